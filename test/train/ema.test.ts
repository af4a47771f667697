import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Dense, InputLayer, Model } from '../../src/index.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { ExponentialMovingAverage } from '../../src/train/ema.js';

test('withAveraged keeps the averaged weights in place until an async body has finished', async () => {
  const backend = referenceBackend;
  const input = new InputLayer({ shape: [1], name: 'in' }).apply([], { backend });
  const dense = new Dense({ units: 1, useBias: false, name: 'd' });
  new Model({ inputs: input, outputs: dense.apply(input, { backend }) });
  const v = dense.kernel;
  v.setData(Float32Array.of(1));
  const ema = new ExponentialMovingAverage(0.5);
  ema.update([v]); // shadow = 1
  v.setData(Float32Array.of(3));
  ema.update([v]); // d = min(0.5, 2/11): shadow = 1·2/11 + 3·9/11
  const averaged = (2 + 27) / 11;
  const seen = await ema.withAveraged(async () => {
    await new Promise((r) => setImmediate(r));
    return v.value.data()[0]!;
  });
  assert.ok(Math.abs(seen - averaged) < 1e-6, `saw ${seen}, expected the average ${averaged}`);
  assert.equal(v.value.data()[0], 3, 'the live weight comes back afterwards');
});
