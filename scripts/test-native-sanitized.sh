#!/usr/bin/env bash
# Runs compiled test files (dist/test/...) against a sanitized addon from build-native-sanitized.sh:
#   scripts/test-native-sanitized.sh asan dist/test/backends/native-kernels.test.js ...
#   scripts/test-native-sanitized.sh tsan dist/test/train/data-parallel.test.js
# Node is not instrumented, so the sanitizer runtime is preloaded (inherited by the test children).
# Reports go to files under build-<kind>/reports/<pid>/; the script fails if any appears.
set -euo pipefail
kind="${1:-}"; shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"
addon="$root/build-$kind/xception_native.node"
case "$kind" in
  asan) runtimes="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" ;;
  tsan) runtimes="$(gcc -print-file-name=libtsan.so)" ;;
  *) echo "usage: $0 asan|tsan test-file..." >&2; exit 2 ;;
esac
[ -f "$addon" ] || { echo "missing $addon: run scripts/build-native-sanitized.sh $kind" >&2; exit 2; }
reports="$root/build-$kind/reports/$$"  # one folder per run: runs may overlap
mkdir -p "$reports"
export XCEPTION_NATIVE_ADDON="$addon"
export LD_PRELOAD="$runtimes"
# Node's own allocations are not instrumented and it keeps memory until exit: leak checks would
# only report Node. OpenMP's runtime (libgomp) is not built with TSan, so its barriers are
# invisible to TSan: tsan.supp silences races whose stack passes through libgomp, nothing else.
export ASAN_OPTIONS="detect_leaks=0:log_path=$reports/asan:abort_on_error=0:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan"
export TSAN_OPTIONS="log_path=$reports/tsan:external_symbolizer_path=$(command -v llvm-symbolizer || true):suppressions=$root/scripts/tsan.supp:halt_on_error=0:report_signal_unsafe=0"
# First prove the setup: the sanitized addon loads and the runtime is in the process.
node --input-type=module -e "
  const mod = { exports: {} };
  process.dlopen(mod, process.env.XCEPTION_NATIVE_ADDON);
  mod.exports.version();
  const maps = (await import('node:fs')).readFileSync('/proc/self/maps', 'utf8');
  if (!/lib${kind}\.so/.test(maps)) throw new Error('lib${kind} is not mapped: LD_PRELOAD did not take');
  console.log('xception: ${kind} runtime live, addon ' + process.env.XCEPTION_NATIVE_ADDON);"
status=0
node --test "$@" || status=$?
if compgen -G "$reports/*" > /dev/null; then
  echo "xception: sanitizer reports in $reports:" >&2
  head -n 60 "$reports"/* >&2
  exit 1
fi
echo "xception: $kind: 0 sanitizer reports (tests exit status $status)"
exit "$status"
