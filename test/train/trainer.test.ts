import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setBackend } from '../../src/index.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { train, TrainingDivergedError } from '../../src/train/trainer.js';
import { Progress } from '../../src/train/progress.js';
import { makeTempDir, writeIdxDataset } from '../data/fixtures.js';
import { assertBitEqual, tinyTrainConfig } from '../helpers/training.js';

setBackend(referenceBackend);
const quiet = new Progress(process.stderr, true);

function weightsOf(dir: string): Map<string, Float32Array> {
  return readCheckpoint(dir).model;
}

test('an interrupted run resumed from its checkpoint ends with exactly the weights of an uninterrupted one', async () => {
  const tmp = makeTempDir('resume');
  try {
    const data = join(tmp.dir, 'data');
    writeIdxDataset(data, { trainCount: 56, testCount: 16, h: 8, w: 8 });
    const full = await train(tinyTrainConfig(data, join(tmp.dir, 'full')), { progress: quiet });
    assert.equal(full.epochs, 2);
    assert.ok(Number.isFinite(full.testTop1));
    // Stop mid-epoch 1 (after 2 of 4 steps), then resume.
    let steps = 0;
    const cut = await train(tinyTrainConfig(data, join(tmp.dir, 'cut')), {
      progress: quiet,
      shouldStop: () => ++steps === 2,
    });
    assert.equal(cut.interrupted, true);
    assert.equal(readCheckpoint(join(tmp.dir, 'cut')).state.step, 2);
    const resumed = await train(tinyTrainConfig(data, join(tmp.dir, 'cut')), { progress: quiet, resume: true });
    assert.equal(resumed.interrupted, false);
    assertBitEqual(weightsOf(join(tmp.dir, 'full')), weightsOf(join(tmp.dir, 'cut')));
    assert.equal(resumed.testTop1, full.testTop1);
    // train 1 epoch, then resume with --epochs 2 (a schedule that does not depend on the length).
    const c2 = tinyTrainConfig(data, join(tmp.dir, 'two'), {
      schedule: 'exponential-step',
      decay: 0.5,
      decayEpochs: 1,
    });
    await train(c2, { progress: quiet });
    await train({ ...c2, epochs: 1, outDir: join(tmp.dir, 'one') }, { progress: quiet });
    await train({ ...c2, outDir: join(tmp.dir, 'one') }, { progress: quiet, resume: true });
    assertBitEqual(weightsOf(join(tmp.dir, 'two')), weightsOf(join(tmp.dir, 'one')));
    // The run folder has what the README promises.
    for (const f of ['config.json', 'metrics.jsonl', 'curves.svg', 'checkpoint.safetensors', 'weights.safetensors']) {
      assert.ok(existsSync(join(tmp.dir, 'full', f)), `${f} missing`);
    }
    assert.equal(
      readFileSync(join(tmp.dir, 'full', 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n').length,
      2,
    );
    // Settings may not change under --resume (except epochs).
    await assert.rejects(
      train({ ...c2, lr: 0.1, outDir: join(tmp.dir, 'one') }, { progress: quiet, resume: true }),
      /cannot resume with different settings — lr/,
    );
    await assert.rejects(train(c2, { progress: quiet }), /already holds a run/);
  } finally {
    tmp.cleanup();
  }
});

test('a diverging loss stops the run with a clear error and keeps the last good checkpoint', async () => {
  const tmp = makeTempDir('nan');
  try {
    const data = join(tmp.dir, 'data');
    writeIdxDataset(data, { trainCount: 64, testCount: 16, h: 8, w: 8 });
    const out = join(tmp.dir, 'run');
    const cfg = tinyTrainConfig(data, out, { lr: 1e30, schedule: 'constant', ema: 0, epochs: 3, momentum: 0.9 });
    let failedAt = 0;
    await assert.rejects(train(cfg, { progress: quiet, checkpointEverySteps: 1 }), (e: Error) => {
      assert.ok(e instanceof TrainingDivergedError, String(e));
      const m = /the loss became (NaN|Infinity|-Infinity) at epoch \d+, step (\d+)/.exec(e.message);
      assert.ok(m, e.message);
      failedAt = Number(m[2]);
      assert.match(e.message, /last good checkpoint/);
      return true;
    });
    // The checkpoint on disk is the one written after the last finite step, complete and loadable.
    const ck = readCheckpoint(out);
    assert.ok(failedAt >= 2);
    assert.equal(ck.state.step, failedAt - 1);
  } finally {
    tmp.cleanup();
  }
});

test('SIGKILL during training never leaves a checkpoint that does not load', async () => {
  const tmp = makeTempDir('kill');
  try {
    const data = join(tmp.dir, 'data');
    writeIdxDataset(data, { trainCount: 64, testCount: 16, h: 8, w: 8 });
    const out = join(tmp.dir, 'run');
    const bin = join(process.cwd(), 'bin', 'xception.js');
    const args = [
      bin,
      'train',
      '--dataset',
      `mnist:${data}`,
      '--stem',
      'small',
      '--width',
      '0.0625',
      '--middle-blocks',
      '1',
      '--batch-size',
      '8',
      '--epochs',
      '1000',
      '--checkpoint-every',
      '1',
      '--out',
      out,
      '--backend',
      'reference',
      '--json',
    ];
    // Each kill lands this long after the process's first training step (a fixed time from the
    // start missed training altogether on a loaded machine).
    for (const delay of [0, 600, 1200]) {
      // A kill before the first checkpoint leaves nothing to resume: the run then starts afresh.
      const resume = existsSync(join(out, 'checkpoint.safetensors'));
      const child = spawn(process.execPath, resume ? [...args, '--resume'] : args, {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      const exited = new Promise((r) => child.on('exit', r));
      await new Promise<void>((resolve, reject) => {
        child.stderr.on('data', (d) => {
          stderr += d;
          if (/ batch \d+\/8 /.test(stderr)) resolve();
        });
        void exited.then(() => reject(new Error(`the run ended before training: ${stderr.slice(-1000)}`)));
      });
      await new Promise((r) => setTimeout(r, delay));
      child.kill('SIGKILL');
      await exited;
      if (existsSync(join(out, 'checkpoint.safetensors'))) {
        const ck = readCheckpoint(out); // must parse completely
        assert.ok(ck.state.step >= 1, stderr);
        assert.ok(ck.model.size > 0);
      }
    }
    assert.ok(existsSync(join(out, 'checkpoint.safetensors')), 'no checkpoint was ever written');
  } finally {
    tmp.cleanup();
  }
});

test('evalsPerEpoch records evenly spaced evaluations that survive a resume and do not change training', async () => {
  const tmp = makeTempDir('evals');
  try {
    const data = join(tmp.dir, 'data');
    writeIdxDataset(data, { trainCount: 64, testCount: 16, h: 8, w: 8 });
    // 64 images / batch 16 = 4 steps per epoch; 2 evaluations per epoch → after steps 2, 4, 6, 8.
    const plain = await train(tinyTrainConfig(data, join(tmp.dir, 'plain'), { ema: 0 }), { progress: quiet });
    assert.deepEqual(
      plain.evalPoints.map((p) => p.step),
      [4, 8],
    );
    const cfg = tinyTrainConfig(data, join(tmp.dir, 'evals'), { ema: 0, evalsPerEpoch: 2 });
    let steps = 0;
    const cut = await train(cfg, { progress: quiet, shouldStop: () => ++steps === 6 });
    assert.equal(cut.interrupted, true);
    assert.deepEqual(
      cut.evalPoints.map((p) => p.step),
      [2, 4, 6],
    );
    const r = await train(cfg, { progress: quiet, resume: true });
    assert.deepEqual(
      r.evalPoints.map((p) => p.step),
      [2, 4, 6, 8],
    );
    assert.deepEqual(
      r.evalPoints.map((p) => p.epoch),
      [0.5, 1, 1.5, 2],
    );
    assert.equal(r.steps, 8);
    for (let i = 1; i < r.evalPoints.length; i++) {
      assert.ok(r.evalPoints[i]!.trainSeconds > r.evalPoints[i - 1]!.trainSeconds);
      assert.ok(r.evalPoints[i]!.wallSeconds >= r.evalPoints[i]!.trainSeconds);
    }
    assert.ok(r.trainSeconds >= r.evalPoints.at(-1)!.trainSeconds);
    // Evaluating in between does not perturb training: same final weights and accuracy.
    assertBitEqual(weightsOf(join(tmp.dir, 'plain')), weightsOf(join(tmp.dir, 'evals')));
    assert.equal(r.evalPoints.at(-1)!.evalTop1, plain.testTop1);
    await assert.rejects(
      train(tinyTrainConfig(data, join(tmp.dir, 'bad'), { evalsPerEpoch: 0 }), { progress: quiet }),
      /evalsPerEpoch must be a positive integer/,
    );
  } finally {
    tmp.cleanup();
  }
});
