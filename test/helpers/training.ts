/** Shared by the trainer tests: a tiny training configuration and bit-exact weight comparison. */
import assert from 'node:assert/strict';
import { DEFAULT_TRAIN_CONFIG, type TrainConfig } from '../../src/train/trainer.js';

/** A tiny small-stem Xception on an IDX data set in `dataDir` (8×8 images): seconds per run. */
export function tinyTrainConfig(dataDir: string, outDir: string, over: Partial<TrainConfig> = {}): TrainConfig {
  return {
    ...DEFAULT_TRAIN_CONFIG,
    dataset: `mnist:${dataDir}`,
    modelOptions: { stem: 'small', width: 1 / 16, middleBlocks: 1, dropout: 0.2 },
    epochs: 2,
    batchSize: 16,
    lr: 0.05,
    schedule: 'cosine',
    ema: 0.9,
    outDir,
    ...over,
  };
}

/** Every named array equal bit for bit (NaNs included). */
export function assertBitEqual(a: Map<string, Float32Array>, b: Map<string, Float32Array>, what = 'weights'): void {
  assert.equal(a.size, b.size, `${what}: different names`);
  for (const [name, va] of a) {
    const vb = b.get(name);
    assert.ok(vb, `${what}: missing ${name}`);
    assert.deepEqual(
      Buffer.from(va.buffer, va.byteOffset, va.byteLength),
      Buffer.from(vb.buffer, vb.byteOffset, vb.byteLength),
      `${what}: ${name} differs`,
    );
  }
}
