/** Bad input on the command line is one clear line: negative numbers, huge batches, replicas, bad --out. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { setBackend } from '../../src/index.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { makeOutputDir } from '../../src/io/output-paths.js';
import { OptionError } from '../../src/core/errors.js';
import { makeTempDir } from '../data/fixtures.js';
import { runCli } from './helpers.js';

setBackend(referenceBackend);

async function fails(args: string[], pattern: RegExp): Promise<void> {
  const r = await runCli(args);
  assert.notEqual(r.code, 0, `${args.join(' ')} succeeded`);
  assert.match(r.err, pattern);
  assert.equal(r.err.trim().split('\n').length, 1, `more than one line:\n${r.err}`);
}

test('a negative number after a flag is range-checked, not "ambiguous"', async () => {
  await fails(['train', '--lr', '-1'], /--lr must be a number in \[1e-12, 100\], got '-1'/);
  await fails(['train', '--epochs', '-3'], /--epochs must be an integer ≥ 1, got '-3'/);
  await fails(['train', '--momentum', '-.5'], /--momentum must be a number in \[0, 1\], got '-\.5'/);
  // A flag after a value-taking flag is still a missing value, not swallowed.
  await fails(['train', '--lr', '--resume'], /train: --lr needs a value/);
});

test('--batch-size has an upper bound and --replicas cannot exceed the cores', async () => {
  await fails(['train', '--batch-size', '100000'], /--batch-size must be an integer in \[1, 65536\], got '100000'/);
  const cores = availableParallelism();
  await fails(
    ['train', '--replicas', String(cores + 1), '--batch-size', '64'],
    new RegExp(`replicas \\(${cores + 1}\\) exceeds the ${cores} core\\(s\\) of this machine.*use at most ${cores}`),
  );
});

test('a bad --out is a one-line error naming the path, for train, export and experiment', async () => {
  const tmp = makeTempDir('bad-out');
  try {
    const file = join(tmp.dir, 'a-file');
    writeFileSync(file, 'x');
    await fails(['train', '--out', file], /--out .*a-file: .*a-file is a file, not a folder; choose another --out/);
    await fails(['train', '--out', join(file, 'run')], /--out .*a-file\/run: .*a-file is a file, not a folder/);
    await fails(['export', '--format', 'onnx', '--stem', 'small', '--out', tmp.dir], /--out .* is a folder; give a file name/);
    await fails(['export', '--format', 'onnx', '--stem', 'small', '--out', join(file, 'm.onnx')], /a-file is a file, not a folder/);
    await fails(['experiment', 'run', 'residual', '--out', file], /--out .*a-file is a file, not a folder/);
    // Node's own recursive mkdir never returns under /proc; ours says why it cannot create the folder.
    await fails(
      ['train', '--out', '/proc/xception-test/run'],
      /cannot create the folder \/proc\/xception-test: no such file or folder \(ENOENT\)/,
    );
    // Missing parents are created.
    assert.equal(makeOutputDir(join(tmp.dir, 'new', 'deeper')), join(tmp.dir, 'new', 'deeper'));
    assert.ok(existsSync(join(tmp.dir, 'new', 'deeper')));
    mkdirSync(join(tmp.dir, 'exists'));
    assert.equal(makeOutputDir(join(tmp.dir, 'exists')), join(tmp.dir, 'exists'));
  } finally {
    tmp.cleanup();
  }
});

test('permission denied on --out is a clear error', (t) => {
  // As root every folder is writable; /sys refuses new folders even to root.
  if (!existsSync('/sys/kernel')) return t.skip('no /sys');
  assert.throws(
    () => makeOutputDir('/sys/xception-test'),
    (e) =>
      e instanceof OptionError &&
      /--out \/sys\/xception-test: cannot (create the folder \/sys\/xception-test|write in this folder): (operation not permitted|permission denied|the file system is read-only) \(E[A-Z]+\); choose another --out/.test(
        e.message,
      ),
  );
});
