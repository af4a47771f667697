#!/usr/bin/env bash
# Builds the wasm backend's kernels: wasm/src/*.c → build/wasm/xception.wasm, with Debian's clang
# and lld (no libc; SIMD128; bulk memory so memcpy/memset lower to memory.copy/fill).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/wasm
CLANG="${CLANG:-clang}"
"$CLANG" --target=wasm32 -O3 -msimd128 -mbulk-memory -nostdlib -ffreestanding -std=c11 -Wall -Wextra -Werror \
  -Wno-pedantic -fno-builtin-memcpy \
  -Wl,--no-entry -Wl,--export=__heap_base \
  -Wl,--initial-memory=16777216 -Wl,--max-memory=4294967296 -Wl,-z,stack-size=1048576 \
  -o build/wasm/xception.wasm.tmp wasm/src/*.c
mv build/wasm/xception.wasm.tmp build/wasm/xception.wasm
echo "built build/wasm/xception.wasm ($(wc -c < build/wasm/xception.wasm) bytes)"
