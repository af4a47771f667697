#!/usr/bin/env bash
# Builds the wasm backend's kernels: wasm/src/*.c → wasm/xception.wasm (single thread, its own
# memory: for pages without cross-origin isolation) and wasm/xception-mt.wasm (threads: atomics,
# an imported shared memory of at most 4 GiB that every worker instantiates on), with Debian's clang
# and lld (apt-get install clang lld; no libc; SIMD128; bulk memory so memcpy/memset lower to
# memory.copy/fill). The module lives outside build/, which node-gyp rebuild deletes at install.
# Without clang or wasm-ld it says so and exits 0 (the wasm backend then skips its tests and the
# default falls back to the reference), unless --strict (setup, prepack).
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG="${CLANG:-clang}"
if ! command -v "$CLANG" >/dev/null || ! command -v wasm-ld >/dev/null; then
  echo "wasm: not built: needs clang and lld (apt-get install clang lld)" >&2
  [ "${1:-}" = "--strict" ] && exit 1
  exit 0
fi
mkdir -p wasm
FLAGS=(--target=wasm32 -O3 -msimd128 -mbulk-memory -nostdlib -ffreestanding -std=c11 -Wall -Wextra -Werror
  -Wl,--no-entry -Wl,--export=__heap_base -Wl,--initial-memory=16777216 -Wl,--max-memory=4294967296 -Wl,-z,stack-size=1048576)
"$CLANG" "${FLAGS[@]}" -o wasm/xception.wasm.tmp wasm/src/*.c
"$CLANG" "${FLAGS[@]}" -matomics -Wl,--import-memory -Wl,--shared-memory -o wasm/xception-mt.wasm.tmp wasm/src/*.c
mv wasm/xception.wasm.tmp wasm/xception.wasm
mv wasm/xception-mt.wasm.tmp wasm/xception-mt.wasm
echo "wasm: built wasm/xception.wasm ($(wc -c < wasm/xception.wasm) bytes), wasm/xception-mt.wasm ($(wc -c < wasm/xception-mt.wasm) bytes)"
