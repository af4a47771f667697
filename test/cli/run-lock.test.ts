/** One writer per run folder (io/run-lock.ts), stale temporary files removed, SIGTERM saves like Ctrl-C. */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { OptionError } from '../../src/core/errors.js';
import { removeStaleTempFiles } from '../../src/io/atomic.js';
import { WeightFileError } from '../../src/io/errors.js';
import { acquireRunLock, LOCK_FILE } from '../../src/io/run-lock.js';
import { readSafetensorsFileSync, writeSafetensorsFileSync } from '../../src/io/safetensors.js';
import { openWeights } from '../../src/io/weights-source.js';
import { readCheckpoint, syncWeightsFile, WEIGHTS_FILE } from '../../src/train/checkpoint.js';
import { makeTempDir, writeIdxDataset } from '../data/fixtures.js';

const bin = join(process.cwd(), 'bin', 'xception.js');
/** The id of a process that has ended. */
const deadPid = (): number => spawnSync(process.execPath, ['-e', '']).pid;
const lockOf = (pid: number, host = hostname()) => JSON.stringify({ pid, host, since: '2026-01-01T00:00:00.000Z' });

async function until(what: string, ok: () => boolean, log: () => string): Promise<void> {
  for (const started = Date.now(); !ok(); await new Promise((r) => setTimeout(r, 50))) {
    if (Date.now() - started > 120_000) throw new Error(`no ${what} within 120 s: ${log().slice(-1000)}`);
  }
}

test('a second process is refused the run folder; SIGTERM then saves and exits 143; a stale weights file is caught and repaired', {
  timeout: 300_000,
}, async () => {
  const tmp = makeTempDir('lock');
  try {
    const data = join(tmp.dir, 'data');
    writeIdxDataset(data, { trainCount: 64, testCount: 16, h: 8, w: 8 });
    const out = join(tmp.dir, 'run');
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
      '1000',
      '--checkpoint-every',
      '1',
      '--out',
      out,
      '--backend',
      'reference',
      '--json',
    ];
    const first = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    first.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => first.on('close', (code) => resolve(code)));
    await until(
      'checkpoint',
      () => existsSync(join(out, 'checkpoint.safetensors')),
      () => stderr,
    );
    assert.ok(existsSync(join(out, LOCK_FILE)));

    for (const extra of [['--resume'], []]) {
      const second = spawnSync(process.execPath, [...args, ...extra], { encoding: 'utf8' });
      assert.equal(second.status, 2, second.stderr);
      assert.match(
        second.stderr,
        new RegExp(`is in use by an xception process \\(pid ${first.pid} on .*two processes cannot write one run folder`),
      );
    }

    first.kill('SIGTERM');
    assert.equal(await exited, 143, stderr.slice(-1000));
    assert.match(stderr, /SIGTERM: stopping after this step and saving a checkpoint/);
    const stop = /stopped at epoch \d+, step (\d+); checkpoint saved/.exec(stderr);
    assert.ok(stop, stderr.slice(-1000));
    assert.equal(readCheckpoint(out).state.step, Number(stop[1]));
    assert.deepEqual(
      readdirSync(out).filter((f) => f === LOCK_FILE || f.endsWith('.tmp')),
      [],
      'lock and temporary files gone',
    );

    // A weights file that is not the checkpoint's (a save killed between the two files): refused, then repaired.
    const weightsFile = join(out, WEIGHTS_FILE);
    const { weights, metadata } = readSafetensorsFileSync(weightsFile);
    weights[0]!.data[0]! += 1;
    writeSafetensorsFileSync(weightsFile, weights, metadata);
    await assert.rejects(
      openWeights(weightsFile),
      (e: unknown) =>
        e instanceof WeightFileError && /not the weights saved with the checkpoint\.safetensors beside it/.test((e as Error).message),
    );
    assert.match(syncWeightsFile(out, readCheckpoint(out)) ?? '', /is not the one saved with checkpoint\.safetensors/);
    assert.equal(syncWeightsFile(out, readCheckpoint(out)), null);
    await openWeights(weightsFile);
  } finally {
    tmp.cleanup();
  }
});

test('a lock of a dead process or an unreadable one is taken over; a live one (this process included) refuses', () => {
  const tmp = makeTempDir('lock-unit');
  try {
    const file = join(tmp.dir, LOCK_FILE);
    for (const stale of [lockOf(deadPid()), '', '{"pid":']) {
      writeFileSync(file, stale);
      const release = acquireRunLock(tmp.dir);
      assert.equal(JSON.parse(readFileSync(file, 'utf8')).pid, process.pid);
      release();
      assert.equal(existsSync(file), false);
    }
    const release = acquireRunLock(tmp.dir);
    assert.throws(
      () => acquireRunLock(tmp.dir),
      (e: unknown) => e instanceof OptionError && new RegExp(`pid ${process.pid}`).test((e as Error).message),
    );
    release();
    writeFileSync(file, lockOf(process.ppid)); // alive: the process that started this test
    assert.throws(() => acquireRunLock(tmp.dir), OptionError);
    writeFileSync(file, lockOf(deadPid(), 'another-host')); // cannot be checked from here
    assert.throws(() => acquireRunLock(tmp.dir), /another-host.*if that process is gone, delete/);
  } finally {
    tmp.cleanup();
  }
});

test('temporary files of ended processes and idle ones of this process are removed; a live process keeps its own', () => {
  const tmp = makeTempDir('temps');
  try {
    const names = {
      dead: `.weights.safetensors.${deadPid()}.0123456789ab.tmp`,
      mine: `.checkpoint.safetensors.${process.pid}.abcdef012345.tmp`,
      live: `.curves.png.${process.ppid}.0123456789ab.tmp`,
      other: 'weights.safetensors',
      unlike: '.notes.tmp',
    };
    for (const n of Object.values(names)) writeFileSync(join(tmp.dir, n), 'x');
    assert.deepEqual(removeStaleTempFiles(tmp.dir).sort(), [names.dead, names.mine].sort());
    assert.deepEqual(readdirSync(tmp.dir).sort(), [names.live, names.other, names.unlike].sort());
  } finally {
    tmp.cleanup();
  }
});
