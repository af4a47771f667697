/** `xception train --resume --out DIR` alone continues a run with its own settings. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setBackend } from '../../src/index.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { makeTempDir, writeIdxDataset } from '../data/fixtures.js';
import { assertBitEqual } from '../helpers/training.js';
import { runCli } from './helpers.js';

// No --backend flag anywhere: the resumed command must not need one.
setBackend(referenceBackend);

/** Emits SIGINT (Ctrl-C) in this process once `file` exists; the trainer turns the event loop every step. */
function interruptWhen(file: string): () => void {
  const timer = setInterval(() => {
    if (existsSync(file)) {
      clearInterval(timer);
      process.emit('SIGINT');
    }
  }, 1);
  return () => clearInterval(timer);
}

test('train --resume --out DIR alone continues a stopped run and ends exactly where an uninterrupted run does', async () => {
  const tmp = makeTempDir('cli-resume');
  try {
    const data = join(tmp.dir, 'data');
    writeIdxDataset(data, { trainCount: 64, testCount: 16, h: 8, w: 8 });
    const flags = [
      '--dataset',
      `mnist:${data}`,
      '--image-size',
      '8',
      '--width',
      '0.0625',
      '--middle-blocks',
      '0',
      '--batch-size',
      '8',
      '--epochs',
      '2',
      '--lr',
      '0.05',
      '--flip',
      '--json',
    ];
    const full = await runCli(['train', ...flags, '--out', join(tmp.dir, 'full')]);
    assert.equal(full.code, 0, full.err);

    const cut = join(tmp.dir, 'cut');
    const stopWatching = interruptWhen(join(cut, 'checkpoint.safetensors'));
    const first = await runCli(['train', ...flags, '--checkpoint-every', '1', '--out', cut]);
    stopWatching();
    assert.equal(first.code, 130, first.err);
    const stoppedAt = readCheckpoint(cut).state.step;
    assert.ok(stoppedAt >= 1 && stoppedAt < 16, `stopped at step ${stoppedAt}`);
    assert.match(first.err, new RegExp(`continue with --resume --out ${cut}`));

    // Runs written before the backend took its flag's name recorded 'onednn': still resumable.
    const configFile = join(cut, 'config.json');
    writeFileSync(configFile, JSON.stringify({ ...JSON.parse(readFileSync(configFile, 'utf8')), backend: 'onednn' }));
    // Given flags must agree with the run's: each disagreeing one is named with both values.
    const bad = await runCli(['train', '--resume', '--out', cut, '--width', '0.0625', '--lr', '0.5', '--stem', 'imagenet']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--lr \(the run has 0\.05, given 0\.5\)/);
    assert.match(bad.err, /--stem \(the run has small, given imagenet\)/);
    assert.doesNotMatch(bad.err, /--width/);
    assert.match(bad.err, /alone continues it/);
    assert.equal(bad.err.trim().split('\n').length, 1);
    assert.equal(readCheckpoint(cut).state.step, stoppedAt, 'a refused resume leaves the run untouched');

    const resumed = await runCli(['train', '--resume', '--out', cut]);
    assert.equal(resumed.code, 0, resumed.err);
    assertBitEqual(readCheckpoint(join(tmp.dir, 'full')).model, readCheckpoint(cut).model);
    // The resumed command printed the human summary (--json was not carried over: it may change).
    const a = JSON.parse(full.out.trim().split('\n').at(-1)!) as { testTop1: number; testLoss: number };
    const m = /test top-1 ([\d.]+)%.*loss ([\d.]+)\s+after 2 epochs/.exec(resumed.out);
    assert.ok(m, resumed.out);
    assert.equal(m[1], (100 * a.testTop1).toFixed(2));
    assert.equal(m[2], a.testLoss.toFixed(4));
    assert.equal(JSON.parse(readFileSync(configFile, 'utf8')).backend, 'reference');
  } finally {
    tmp.cleanup();
  }
});

test('train --resume with nothing to resume, or an unreadable checkpoint, is a one-line error', async () => {
  const tmp = makeTempDir('cli-resume-none');
  try {
    const none = await runCli(['train', '--resume', '--out', join(tmp.dir, 'empty')]);
    assert.equal(none.code, 2);
    assert.match(none.err, /nothing to resume in .*empty \(no checkpoint\.safetensors there\); start the run without --resume/);
    // A checkpoint that is a folder: a one-line error from main, not a stack trace.
    const run = join(tmp.dir, 'odd');
    mkdirSync(join(run, 'checkpoint.safetensors'), { recursive: true });
    const odd = await runCli(['train', '--resume', '--out', run]);
    assert.notEqual(odd.code, 0);
    assert.match(odd.err, /^xception train: error: .*(EISDIR|folder)/);
    assert.equal(odd.err.trim().split('\n').length, 1, odd.err);
    assert.doesNotMatch(odd.err, /\n\s+at /);
  } finally {
    tmp.cleanup();
  }
});
