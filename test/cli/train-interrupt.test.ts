import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { makeTempDir, writeIdxDataset } from '../data/fixtures.js';

// Ctrl-C is SIGINT: the handler can only run when the training loop gives the event loop a turn.
test('SIGINT (Ctrl-C) stops `xception train` after the current step with a checkpoint', async () => {
  const tmp = makeTempDir('sigint');
  try {
    const data = join(tmp.dir, 'data');
    // 4096 images in batches of 8: 512 steps per epoch, so the signal lands well inside epoch 1.
    writeIdxDataset(data, { trainCount: 4096, testCount: 16, h: 8, w: 8 });
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
      '0',
      '--batch-size',
      '8',
      '--epochs',
      '3',
      '--out',
      out,
      '--backend',
      'reference',
      '--json',
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // Interrupt once training is under way (a progress line has been printed).
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no progress within 60 s: ${stderr}`)), 60_000);
      child.stderr.on('data', (d) => {
        stderr += d;
        if (/batch \d+\/512/.test(stderr)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    child.kill('SIGINT');
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const code = await exited;
    clearTimeout(killer);
    assert.equal(code, 130, `exit code ${code}; stderr:\n${stderr.slice(-2000)}`);
    assert.match(stderr, /stopping after this step/);
    // Within the epoch it was in: not held until the epoch's end (the event loop turns every step).
    const stop = /stopped at epoch (\d+), step (\d+); checkpoint saved/.exec(stderr);
    assert.ok(stop, stderr.slice(-2000));
    assert.equal(stop[1], '1');
    assert.ok(existsSync(join(out, 'checkpoint.safetensors')));
    const step = readCheckpoint(out).state.step;
    assert.ok(step >= 1 && step < 512, `checkpoint at step ${step}`);
    assert.equal(step, Number(stop[2]));
  } finally {
    tmp.cleanup();
  }
});
