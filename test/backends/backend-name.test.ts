/** One name for the native backend: 'native' everywhere, 'onednn' (its old name) accepted on input. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import '../../src/backends/index.js';
import { loadNativeBackend, nativeBackendStatus } from '../../src/backends/onednn/index.js';
import { canonicalBackendName, getBackend, setBackend, tryBackend } from '../../src/core/engine.js';
import { backendFlag } from '../../src/cli/args.js';
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
    (e) => e instanceof OptionError && /--backend must be one of native, reference, got 'cuda'/.test(e.message),
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
  assert.match(bad.stderr, /XCEPTION_BACKEND must be 'native' or 'reference', got 'gpu'/);
});
