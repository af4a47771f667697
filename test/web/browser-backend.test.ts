/** The browser build's backend choice: a bad wasm memory cap or SIMD choice is a clear error before anything loads. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBrowserBackend } from '../../src/browser/backend.js';
import { BackendError } from '../../src/core/errors.js';

test('useBrowserBackend refuses a memoryLimitMB that is not a whole number of MiB from 1 to 4096', async () => {
  for (const bad of [0, -1, 4097, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    await assert.rejects(
      useBrowserBackend({ memoryLimitMB: bad }),
      (e: unknown) => e instanceof BackendError && /memoryLimitMB must be a whole number from 1 to 4096, got/.test(e.message),
      String(bad),
    );
  }
  // The reference preference needs no wasm: a valid cap is accepted and the reference runs.
  const choice = await useBrowserBackend({ prefer: 'reference', memoryLimitMB: 64 });
  assert.equal(choice.name, 'reference');
});

test('useBrowserBackend refuses an unknown simd choice even where it would fall back to the reference', async () => {
  for (const prefer of ['auto', 'wasm', 'reference'] as const) {
    await assert.rejects(
      useBrowserBackend({ prefer, simd: 'bogus' as 'auto' }),
      (e: unknown) => e instanceof BackendError && /simd must be one of auto, relaxed, plain, got 'bogus'/.test(e.message),
      prefer,
    );
  }
});
