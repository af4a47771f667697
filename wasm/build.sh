#!/usr/bin/env bash
# Builds the wasm backend's kernels from wasm/src/*.c with Debian's clang and lld (no libc; SIMD128;
# bulk memory so memcpy/memset lower to memory.copy/fill), four modules:
#   wasm/xception.wasm             one thread, its own memory (pages without cross-origin isolation)
#   wasm/xception-mt.wasm          threads: atomics, an imported shared memory of at most 4 GiB that
#                                  every worker instantiates on
#   wasm/xception-relaxed.wasm     the same two with relaxed SIMD (-mrelaxed-simd: multiply-adds
#   wasm/xception-mt-relaxed.wasm  fused, f32x4.relaxed_madd; MADD in kernels.h), for engines that have it
# clang-19 (Debian's clang-19 and lld-19) is preferred: clang 14 folds no constant offsets into
# the GEMM's loads and emits relaxed-SIMD opcodes of a draft that engines reject, so with an older
# clang only the first two are built. The modules live outside build/, which node-gyp rebuild
# deletes at install. Without clang or wasm-ld it says so and exits 0 (the wasm backend then skips
# its tests and the default falls back to the reference), unless --strict (setup, prepack).
set -euo pipefail
cd "$(dirname "$0")/.."
LLVM19=/usr/lib/llvm-19/bin
if [ -z "${CLANG:-}" ] && [ -x "$LLVM19/clang" ] && [ -x "$LLVM19/wasm-ld" ]; then CLANG="$LLVM19/clang"; fi
CLANG="${CLANG:-clang}"
LD_DIR="$(dirname "$(command -v "$CLANG" || echo /nonexistent)")"
if ! command -v "$CLANG" >/dev/null || ! { [ -x "$LD_DIR/wasm-ld" ] || command -v wasm-ld >/dev/null; }; then
  echo "wasm: not built: needs clang and lld (apt-get install clang-19 lld-19)" >&2
  [ "${1:-}" = "--strict" ] && exit 1
  exit 0
fi
mkdir -p wasm
FLAGS=(--target=wasm32 -O3 -msimd128 -mbulk-memory -nostdlib -ffreestanding -std=c11 -Wall -Wextra -Werror
  -Wl,--no-entry -Wl,--export=__heap_base -Wl,--initial-memory=16777216 -Wl,--max-memory=4294967296 -Wl,-z,stack-size=1048576)
THREADS=(-matomics -Wl,--import-memory -Wl,--shared-memory)
MAJOR="$(echo __clang_major__ | "$CLANG" -E -P -x c - | tr -d '[:space:]')"
build() { # out, extra flags…
  local out="$1"
  shift
  "$CLANG" "${FLAGS[@]}" "$@" -o "$out.tmp" wasm/src/*.c
  mv "$out.tmp" "$out"
  echo "wasm: built $out ($(wc -c <"$out") bytes)"
}
build wasm/xception.wasm
build wasm/xception-mt.wasm "${THREADS[@]}"
if [ "$MAJOR" -ge 19 ]; then
  build wasm/xception-relaxed.wasm -mrelaxed-simd
  build wasm/xception-mt-relaxed.wasm -mrelaxed-simd "${THREADS[@]}"
else
  rm -f wasm/xception-relaxed.wasm wasm/xception-mt-relaxed.wasm
  echo "wasm: clang $MAJOR: no relaxed-SIMD modules (they need clang 19: apt-get install clang-19 lld-19)"
fi
