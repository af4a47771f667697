/** `xception train --weights … --freeze-base --fine-tune-epochs …` end to end, and its errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { makeTempDir, writeIdxDataset } from '../data/fixtures.js';

const bin = join(process.cwd(), 'bin', 'xception.js');

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [bin, ...args], { timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout: string; stderr: string };
    return { code: err.code ?? -1, stdout: err.stdout, stderr: err.stderr };
  }
}

test('train --weights RUN_DIR --freeze-base --fine-tune-epochs: the source run decides the model; errors name the flag', async () => {
  const tmp = makeTempDir('transfer-cli');
  try {
    const data = join(tmp.dir, 'data');
    writeIdxDataset(data, { trainCount: 32, testCount: 16, h: 8, w: 8 });
    const common = ['--dataset', `mnist:${data}`, '--batch-size', '16', '--epochs', '1', '--backend', 'reference', '--json'];
    const src = join(tmp.dir, 'src');
    const first = await cli(['train', ...common, '--stem', 'small', '--width', '0.0625', '--middle-blocks', '0', '--out', src]);
    assert.equal(first.code, 0, first.stderr);

    const dst = join(tmp.dir, 'dst');
    const r = await cli([
      'train',
      ...common,
      '--weights',
      src,
      '--freeze-base',
      '--fine-tune-epochs',
      '1',
      '--fine-tune-lr',
      '1e-4',
      '--optimizer',
      'adam',
      '--lr',
      '1e-3',
      '--schedule',
      'constant',
      '--out',
      dst,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /weights: loaded 33 layers \(92 of the model's 92 weights\) from .*src \(run\)/);
    assert.match(r.stderr, /kept predictions \(the same 10 classes\)/);
    assert.match(r.stderr, /phase 1\/2 \(head\): training predictions only/);
    assert.match(r.stderr, /phase 2\/2 \(fine-tune\): training every layer .* at 0\.0001, fresh optimizer state/);
    assert.equal(JSON.parse(r.stdout.trim().split('\n').at(-1)!).epochs, 2);
    const state = readCheckpoint(dst).state;
    assert.deepEqual(
      [state.model.options['stem'], state.model.options['width'], state.model.options['middleBlocks']],
      ['small', 0.0625, 0],
    );
    const config = JSON.parse(readFileSync(join(dst, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual([config['weights'], config['freezeBase'], config['fineTuneEpochs'], config['fineTuneLr']], [src, true, 1, 1e-4]);

    const fails: Array<[string[], RegExp]> = [
      [
        ['--fine-tune-epochs', '2'],
        /--fine-tune-epochs continues after training the head on a frozen base: give --weights FILE\|RUN_DIR --freeze-base/,
      ],
      [
        ['--weights', src, '--freeze-base', '--fine-tune-epochs', '1', '--unfreeze-from', 'block9_sepconv1'],
        /has no layer 'block9_sepconv1'; layers include block1_conv1, block2_sepconv1/,
      ],
      [['--weights', src, '--width', '0.5'], /these options contradict it: width 0\.5 \(the weights' model has 0\.0625\)/],
      [['--weights', src, '--fine-tune-lr', '1e-5'], /--fine-tune-lr applies to the fine-tuning phase: give --fine-tune-epochs N too/],
      [['--weights', join(tmp.dir, 'missing.h5')], /missing\.h5.*no such file/],
    ];
    for (const [args, message] of fails) {
      const out = join(tmp.dir, 'bad');
      const f = await cli(['train', ...common, ...args, '--out', out]);
      assert.equal(f.code, 2, `${args.join(' ')}: ${f.stderr}`);
      assert.match(f.stderr, message);
      assert.doesNotMatch(f.stderr, /\n\s+at /, 'no stack trace');
      assert.equal(existsSync(join(out, 'checkpoint.safetensors')), false);
    }
    const help = await cli(['train', '--help']);
    assert.match(help.stdout, /--fine-tune-lr X +that rate \(default: --lr ÷ 100/);
  } finally {
    tmp.cleanup();
  }
});
