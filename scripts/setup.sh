#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine: system packages, then npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends libdnnl-dev dataset-fashion-mnist >/dev/null
ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
