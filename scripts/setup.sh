#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine: system packages, then npm packages.
set -euo pipefail
# Not installed (golden values only, never needed): python3-pil and python3-h5py; where present,
# two tests also compare with Pillow's resizing (Keras's load_img) and h5py's reading; else they skip.
# clang-19 + lld-19: compile the wasm backend's C kernels to wasm32 (wasm/build.sh).
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends libdnnl-dev dataset-fashion-mnist clang-19 lld-19 >/dev/null
ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
# chromium: the web page's tests run it headless (test/web/page.test.ts).
$SUDO apt-get install -y -qq chromium >/dev/null
bash wasm/build.sh --strict
