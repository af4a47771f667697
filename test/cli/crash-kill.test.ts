/**
 * Crash safety tested like a database: training processes SIGKILL themselves at injected points
 * (io/kill-point.ts) — inside every atomic write (after the temporary file is written, after its
 * fsync, after its rename), after training steps, during evaluations — and after each kill the run
 * is continued. The continued run must end with weights bit-equal to an uninterrupted run's, with
 * its weights file matching its checkpoint, and with no temporary file or lock left behind.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { KILL_AT_VARIABLE } from '../../src/io/kill-point.js';
import { LOCK_FILE } from '../../src/io/run-lock.js';
import { readSafetensorsFileSync } from '../../src/io/safetensors.js';
import { hasCheckpoint, readCheckpoint, WEIGHTS_FILE, weightsFileMismatch } from '../../src/train/checkpoint.js';
import { makeTempDir, writeIdxDataset } from '../data/fixtures.js';
import { assertBitEqual } from '../helpers/training.js';

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

const bin = join(process.cwd(), 'bin', 'xception.js');

function xception(args: string[], env: Record<string, string> = {}): Promise<Exit> {
  const child = spawn(process.execPath, [bin, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stderr })));
}

/**
 * The kill points of the run below. A run of 2 epochs × 4 steps with a checkpoint every step makes
 * 23 atomic writes: config.json, 3 × (weights, checkpoint) per epoch's steps, and at each epoch's
 * end weights, checkpoint, metrics.jsonl, curves.svg and curves.png. Every rename is a kill point;
 * the temporary-write and fsync points are sampled. Each of the 2 evaluations reads the test set in one batch.
 */
const CASES: string[] = [
  ...Array.from({ length: 23 }, (_, i) => `renamed:${i + 1}`),
  ...[1, 2, 3, 5, 8, 11, 13, 17, 23].map((n) => `temp-written:${n}`),
  ...[1, 2, 4, 7, 10, 14, 16, 19, 22].map((n) => `temp-synced:${n}`),
  ...Array.from({ length: 8 }, (_, i) => `step:${i + 1}`),
  ...[1, 2].map((n) => `eval-batch:${n}`),
];

/** Runs `work` over `items`, `width` at a time; every item runs, failures are collected. */
async function inParallel<T>(items: readonly T[], width: number, work: (item: T) => Promise<void>): Promise<string[]> {
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await work(item).catch((e: Error) => failures.push(`${String(item)}: ${e.message}`));
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  return failures;
}

const leftovers = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.tmp') || f === LOCK_FILE);
const modelWeightsOf = (file: string) => new Map(readSafetensorsFileSync(file).weights.map((w) => [w.name, w.data]));

test(`${CASES.length} SIGKILLs at injected points: each continued run ends bit-equal to the uninterrupted run, nothing left over`, {
  timeout: 600_000,
}, async () => {
  assert.ok(CASES.length >= 50);
  const tmp = makeTempDir('crash-kill');
  try {
    const data = join(tmp.dir, 'data');
    writeIdxDataset(data, { trainCount: 32, testCount: 16, h: 8, w: 8 });
    const flags = [
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
      '2',
      '--lr',
      '0.05',
      '--flip',
      '--ema',
      '0.9',
      '--checkpoint-every',
      '1',
      '--backend',
      'reference',
      '--json',
    ];
    const full = join(tmp.dir, 'full');
    const uninterrupted = await xception([...flags, '--out', full]);
    assert.equal(uninterrupted.code, 0, uninterrupted.stderr);
    const reference = readCheckpoint(full);

    const seen = { tempFiles: 0, staleWeights: 0, noCheckpoint: 0 };
    const failures = await inParallel(CASES, 3, async (killAt) => {
      const out = join(tmp.dir, killAt.replace(':', '-'));
      const killed = await xception([...flags, '--out', out], { [KILL_AT_VARIABLE]: killAt });
      assert.equal(killed.signal, 'SIGKILL', `the kill point was not reached (exit ${killed.code}): ${killed.stderr.slice(-500)}`);
      if (readdirSync(out).some((f) => f.endsWith('.tmp'))) seen.tempFiles++;
      let again: Exit;
      if (hasCheckpoint(out)) {
        if (weightsFileMismatch(out, readCheckpoint(out))) seen.staleWeights++;
        again = await xception(['train', '--resume', '--out', out, '--backend', 'reference']);
      } else {
        seen.noCheckpoint++; // killed before the first checkpoint: the run starts over
        again = await xception([...flags, '--out', out]);
      }
      assert.equal(again.code, 0, again.stderr.slice(-1000));
      const ended = readCheckpoint(out);
      assert.equal(ended.state.step, reference.state.step);
      assertBitEqual(reference.model, ended.model, 'checkpoint weights');
      assertBitEqual(reference.model, modelWeightsOf(join(out, WEIGHTS_FILE)), WEIGHTS_FILE);
      assertBitEqual(new Map(Object.entries(reference.ema)), new Map(Object.entries(ended.ema)), 'weight average');
      assert.equal(weightsFileMismatch(out, ended), null);
      assert.deepEqual(leftovers(out), [], 'temporary files or the lock left behind');
    });
    assert.deepEqual(failures, []);
    // The recovery paths were exercised, not only the easy cases.
    assert.ok(seen.tempFiles > 0 && seen.staleWeights > 0 && seen.noCheckpoint > 0, JSON.stringify(seen));
    console.log(`${CASES.length} kills: ${JSON.stringify(seen)}`);
  } finally {
    tmp.cleanup();
  }
});
