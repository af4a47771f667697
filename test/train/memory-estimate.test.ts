import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import '../../src/backends/index.js';
import { tryBackend } from '../../src/core/engine.js';
import { OptionError } from '../../src/core/errors.js';
import { main } from '../../src/cli/main.js';
import { buildModel } from '../../src/models/registry.js';
import { checkTrainingMemory, estimateTrainingMemory, usableMemory } from '../../src/train/memory-estimate.js';
import { makeTempDir, writeIdxDataset } from '../data/fixtures.js';

const OPTIONS = { stem: 'small', width: 1 / 16, middleBlocks: 1, inputShape: [8, 8, 1], classes: 10, seed: 3 };

test('the training memory estimate grows with the batch and the replicas, and a batch that cannot fit is an OptionError naming it', () => {
  const model = buildModel('xception', { ...OPTIONS, backend: tryBackend('reference')! });
  const perImage = model.layers.reduce((a, l) => a + l.output!.shape.reduce((p, q) => p * q, 1), 0);
  const params = model.weights.reduce((a, v) => a + v.size, 0);
  const one = estimateTrainingMemory(model, 1, 1);
  assert.deepEqual(one, { activationBytes: perImage * 8, weightBytes: params * 16, bytes: perImage * 8 + params * 16 });
  assert.equal(estimateTrainingMemory(model, 64, 1).activationBytes, 64 * one.activationBytes);
  assert.equal(estimateTrainingMemory(model, 64, 2).weightBytes, 3 * one.weightBytes); // 2 replicas + the main thread
  const fits = estimateTrainingMemory(model, 64, 2).bytes;
  checkTrainingMemory(model, 64, 2, { bytes: fits, bound: 'test' });
  assert.throws(
    () => checkTrainingMemory(model, 64, 2, { bytes: fits - 1, bound: 'cgroup memory.max' }),
    (e: Error) => {
      assert.ok(e instanceof OptionError);
      assert.match(
        e.message,
        /^batch size 64 with 2 replicas needs about [\d.]+ GB to train \(activations [\d.]+ GB, .*\), but this process may use [\d.]+ GB \(cgroup memory\.max\); lower --batch-size or --replicas$/,
      );
      return true;
    },
  );
  const usable = usableMemory();
  assert.ok(usable.bytes > 0 && usable.bytes < Number.POSITIVE_INFINITY, `usable memory ${usable.bytes} (${usable.bound})`);
  model.dispose();
});

test('xception train refuses a --batch-size whose estimate exceeds the memory limit, before training', async () => {
  const tmp = makeTempDir('mem-cli');
  const saved = process.env.XCEPTION_MEMORY_LIMIT_MB;
  try {
    const data = join(tmp.dir, 'data');
    writeIdxDataset(data, { trainCount: 16, testCount: 4, h: 8, w: 8 });
    const args = [
      'train',
      '--dataset',
      `mnist:${data}`,
      '--stem',
      'small',
      '--width',
      '0.0625',
      '--middle-blocks',
      '1',
      '--epochs',
      '1',
      '--backend',
      'reference',
    ];
    process.env.XCEPTION_MEMORY_LIMIT_MB = '64';
    let err = '';
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => {
      err += s;
      return true;
    }) as typeof process.stderr.write;
    let code: number;
    try {
      code = await main([...args, '--batch-size', '65536', '--out', join(tmp.dir, 'big')], () => {});
    } finally {
      process.stderr.write = write;
    }
    assert.equal(code, 2, err);
    assert.match(err, /batch size 65536 needs about [\d.]+ GB to train .* but this process may use 0\.07 GB \(XCEPTION_MEMORY_LIMIT_MB\)/);
    // A batch that fits still trains under the same limit.
    assert.equal(await main([...args, '--batch-size', '8', '--out', join(tmp.dir, 'small')], () => {}), 0);
  } finally {
    if (saved === undefined) delete process.env.XCEPTION_MEMORY_LIMIT_MB;
    else process.env.XCEPTION_MEMORY_LIMIT_MB = saved;
    tmp.cleanup();
  }
});

test('a malformed XCEPTION_MEMORY_LIMIT_MB is a clear error, not a limit silently ignored', () => {
  const saved = process.env.XCEPTION_MEMORY_LIMIT_MB;
  try {
    for (const bad of ['abc', '0', '-5', 'Infinity', '']) {
      process.env.XCEPTION_MEMORY_LIMIT_MB = bad;
      assert.throws(
        () => usableMemory(),
        (e: Error) => e instanceof OptionError && /XCEPTION_MEMORY_LIMIT_MB must be a positive number/.test(e.message),
        bad,
      );
    }
    process.env.XCEPTION_MEMORY_LIMIT_MB = '512';
    assert.deepEqual(usableMemory(), { bytes: 512 * 2 ** 20, bound: 'XCEPTION_MEMORY_LIMIT_MB' });
  } finally {
    if (saved === undefined) delete process.env.XCEPTION_MEMORY_LIMIT_MB;
    else process.env.XCEPTION_MEMORY_LIMIT_MB = saved;
  }
});
