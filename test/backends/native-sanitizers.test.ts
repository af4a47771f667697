/**
 * Runs a quick native workload against the sanitized addons when they were built
 * (scripts/build-native-sanitized.sh asan|tsan; 4–9 minutes each on 2 cores, so CI does not
 * build them): the native fuzzers under AddressSanitizer + UBSan, and two replicas training on the
 * native backend under ThreadSanitizer. Any sanitizer report fails the test. The full runs are in
 * docs/guide.md (Develop).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SCRIPT = `${ROOT}scripts/test-native-sanitized.sh`;
const dist = (file: string) => fileURLToPath(new URL(`../${file}`, import.meta.url));

function runSanitized(kind: 'asan' | 'tsan', files: string[], env: Record<string, string>): void {
  const r = spawnSync('bash', [SCRIPT, kind, ...files], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 900_000,
  });
  const out = `${r.stdout}\n${r.stderr}`;
  assert.match(out, new RegExp(`xception: ${kind} runtime live, addon .*build-${kind}/xception_native\\.node`));
  assert.equal(r.status, 0, `sanitized run failed (status ${r.status}, signal ${r.signal}):\n${out.slice(-6000)}`);
  assert.match(out, new RegExp(`xception: ${kind}: 0 sanitizer reports`));
}

const asanMissing = !existsSync(`${ROOT}build-asan/xception_native.node`);
test('ASan + UBSan: the native fuzzers run with 0 reports', {
  skip: asanMissing ? 'no ASan build: run scripts/build-native-sanitized.sh asan to enable' : false,
  timeout: 900_000,
}, () => {
  runSanitized('asan', [dist('backends/native-fuzz.test.js')], { XCEPTION_FUZZ_CASES: '150' });
});

const tsanMissing = !existsSync(`${ROOT}build-tsan/xception_native.node`);
test('TSan: data-parallel replicas on the native backend run with 0 races (OpenMP internals suppressed)', {
  skip: tsanMissing ? 'no TSan build: run scripts/build-native-sanitized.sh tsan to enable' : false,
  timeout: 900_000,
}, () => {
  // The data-parallel test whose replicas compute on the native backend.
  runSanitized('tsan', ['--test-name-pattern=non-finite loss', dist('train/data-parallel.test.js')], {});
});
