#!/usr/bin/env bash
# Builds the native addon with sanitizers into its own directory, for tests only (never shipped):
#   scripts/build-native-sanitized.sh asan   -> build-asan/xception_native.node (AddressSanitizer + UBSan)
#   scripts/build-native-sanitized.sh tsan   -> build-tsan/xception_native.node (ThreadSanitizer)
# Node itself is not instrumented, so the sanitizer runtime must be preloaded when running tests:
# scripts/test-native-sanitized.sh does that. Compiles with g++ directly (node-gyp has one build
# dir); same sources and flags as binding.gyp except -O1 -g and the sanitizer.
set -euo pipefail
kind="${1:-}"
root="$(cd "$(dirname "$0")/.." && pwd)"
case "$kind" in
  asan) flags=(-fsanitize=address,undefined -fno-sanitize-recover=undefined) ;;
  tsan) flags=(-fsanitize=thread) ;;
  *) echo "usage: $0 asan|tsan" >&2; exit 2 ;;
esac
out="$root/build-$kind"
mkdir -p "$out/obj"
nodeInclude="$(dirname "$(dirname "$(command -v node)")")/include/node"
[ -f "$nodeInclude/node_api.h" ] || nodeInclude=/usr/include/node
common=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fPIC -pthread -fexceptions -fopenmp
  -Wall -Wextra -Wno-unused-parameter -DNAPI_DISABLE_CPP_EXCEPTIONS -DBUILDING_NODE_EXTENSION
  -I"$nodeInclude" "${flags[@]}")
# binding.gyp is JSON: its source list is the one truth.
mapfile -t sources < <(node -e "
  const t = JSON.parse(require('fs').readFileSync('$root/binding.gyp', 'utf8')).targets[0];
  for (const s of t.sources) console.log(s);")
start=$(date +%s)
jobs="${JOBS:-2}"
objs=()
for src in "${sources[@]}"; do
  obj="$out/obj/$(basename "${src%.cc}").o"
  objs+=("$obj")
  # At most $jobs compilers at once: the machine may be shared.
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
  g++ "${common[@]}" -c "$root/$src" -o "$obj" &
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n; done
g++ -shared -pthread -fopenmp "${flags[@]}" -o "$out/xception_native.node" "${objs[@]}" -ldnnl
echo "xception: $kind addon built in $(( $(date +%s) - start )) s: $out/xception_native.node"
