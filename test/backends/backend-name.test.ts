/** One name for the native backend: 'native' everywhere, 'onednn' (its old name) accepted on input. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import '../../src/backends/index.js';
import { loadNativeBackend, nativeBackendStatus } from '../../src/backends/onednn/index.js';
import { canonicalBackendName, getBackend, setBackend, tryBackend } from '../../src/core/engine.js';
import { backendFlag } from '../../src/cli/args.js';
import { wasmBackendStatus } from '../../src/backends/wasm/node.js';
import { OptionError } from '../../src/core/errors.js';

const native = loadNativeBackend();

test("the native backend is named 'native', and 'onednn' is an alias for it", (t) => {
  assert.equal(canonicalBackendName('onednn'), 'native');
  assert.equal(canonicalBackendName('reference'), 'reference');
  assert.equal(backendFlag('onednn'), 'native');
  assert.equal(backendFlag('native'), 'native');
  assert.equal(backendFlag(undefined), undefined);
  assert.throws(
    () => backendFlag('cuda'),
    (e) => e instanceof OptionError && /--backend must be one of native, reference, wasm, got 'cuda'/.test(e.message),
  );
  if (!native) return t.skip(nativeBackendStatus().reason);
  assert.equal(native.name, 'native');
  assert.equal(tryBackend('onednn'), native);
  const before = getBackend();
  try {
    assert.equal(setBackend('onednn').name, 'native');
  } finally {
    setBackend(before);
  }
});

test('XCEPTION_BACKEND=onednn picks the native backend, and the name printed is native', (t) => {
  if (!native) return t.skip(nativeBackendStatus().reason);
  const code =
    "import './dist/src/backends/index.js'; import { getBackend } from './dist/src/core/engine.js'; console.log(getBackend().name);";
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    encoding: 'utf8',
    env: { ...process.env, XCEPTION_BACKEND: 'onednn' },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'native');
  const bad = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    encoding: 'utf8',
    env: { ...process.env, XCEPTION_BACKEND: 'gpu' },
  });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /XCEPTION_BACKEND must be 'native', 'wasm' or 'reference', got 'gpu'/);
});

/** Runs `code` (an ES module) in a child with extra environment; returns its status, stdout and stderr. */
function runWith(env: Record<string, string>, code: string) {
  return spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', env: { ...process.env, ...env } });
}

const PRINT_DEFAULT =
  "import './dist/src/backends/index.js'; import { getBackend } from './dist/src/core/engine.js'; console.log(getBackend().name);";

test("the wasm backend answers to 'wasm' in --backend and XCEPTION_BACKEND", (t) => {
  assert.equal(backendFlag('wasm'), 'wasm');
  if (!wasmBackendStatus().available) return t.skip(wasmBackendStatus().reason);
  const r = runWith({ XCEPTION_BACKEND: 'wasm' }, PRINT_DEFAULT);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'wasm');
  const off = runWith({ XCEPTION_BACKEND: 'wasm', XCEPTION_WASM: '0' }, PRINT_DEFAULT);
  assert.notEqual(off.status, 0);
  assert.match(off.stderr, /XCEPTION_BACKEND=wasm, but that backend is not available/);
});

test('the default is native, then wasm, then reference, and a fallback says which backend runs and why', (t) => {
  if (!wasmBackendStatus().available) return t.skip(wasmBackendStatus().reason);
  const noNative = runWith({ XCEPTION_BACKEND: '', XCEPTION_NATIVE: '0' }, PRINT_DEFAULT);
  assert.equal(noNative.status, 0, noNative.stderr);
  assert.equal(noNative.stdout.trim(), 'wasm');
  assert.match(noNative.stderr, /native backend not available \(disabled by XCEPTION_NATIVE=0\); using the wasm backend/);
  const neither = runWith({ XCEPTION_BACKEND: '', XCEPTION_NATIVE: '0', XCEPTION_WASM: '0' }, PRINT_DEFAULT);
  assert.equal(neither.stdout.trim(), 'reference');
  assert.match(neither.stderr, /wasm backend not available \(disabled by XCEPTION_WASM=0\); using the reference backend \(slow\)/);
  if (native) {
    const both = runWith({ XCEPTION_BACKEND: '' }, PRINT_DEFAULT);
    assert.equal(both.stdout.trim(), 'native');
    assert.equal(both.stderr, '');
  }
});
