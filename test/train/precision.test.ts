/**
 * bf16 mixed-precision training (`precision: 'bf16'`, `xception train --precision bf16`): a short
 * run on a tiny model learns and ends close to the same run in fp32; the precision is recorded and
 * kept on resume; the reference backend and unknown precisions are refused with clear errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import '../../src/index.js';
import { OptionError } from '../../src/core/errors.js';
import { Random } from '../../src/core/random.js';
import { loadNativeBackend, nativeBackendStatus } from '../../src/backends/onednn/index.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { Progress } from '../../src/train/progress.js';
import { train } from '../../src/train/trainer.js';
import { idxBytes, makeTempDir, writeFile } from '../data/fixtures.js';
import { tinyTrainConfig } from '../helpers/training.js';

const quiet = new Progress(process.stderr, true);
const N = loadNativeBackend();
const bin = join(process.cwd(), 'bin', 'xception.js');

/** Why bf16 training cannot run here, or null. */
function bf16Unavailable(): string | null {
  if (!N) return nativeBackendStatus().reason ?? 'no native backend';
  return N.bf16Hardware() === 'unsupported' ? 'no AVX-512: no bf16 convolutions' : null;
}

/**
 * A learnable IDX data set: 12×12 images, four classes, each a bright 6×6 quadrant (the class)
 * over noise. Labels 0–3 of the format's 10.
 */
function writeQuadrants(dir: string, trainCount: number, testCount: number): void {
  mkdirSync(dir, { recursive: true });
  const rng = new Random(7);
  for (const [prefix, n] of [
    ['train', trainCount],
    ['t10k', testCount],
  ] as const) {
    const images = new Uint8Array(n * 144);
    const labels = Array.from({ length: n }, (_, i) => i % 4);
    for (let k = 0; k < n; k++) {
      const qy = labels[k]! >> 1,
        qx = labels[k]! & 1;
      for (let y = 0; y < 12; y++)
        for (let x = 0; x < 12; x++) {
          const inside = Math.floor(y / 6) === qy && Math.floor(x / 6) === qx;
          images[k * 144 + y * 12 + x] = Math.round((inside ? 150 : 0) + rng.uniform(0, 100));
        }
    }
    writeFile(join(dir, `${prefix}-images-idx3-ubyte`), idxBytes([n, 12, 12], images));
    writeFile(join(dir, `${prefix}-labels-idx1-ubyte`), idxBytes([n], labels));
  }
}

const config = (data: string, out: string, precision: 'fp32' | 'bf16') =>
  tinyTrainConfig(data, out, {
    epochs: 4,
    batchSize: 16,
    lr: 0.05,
    ema: 0,
    modelOptions: { stem: 'small', width: 1 / 8, middleBlocks: 1, dropout: 0 },
    precision,
  });

test('a bf16 run learns, ends close to the fp32 run, records its precision and resumes only in bf16', async (t) => {
  const why = bf16Unavailable();
  if (why) return void t.skip(why);
  const tmp = makeTempDir('bf16-train');
  try {
    const data = join(tmp.dir, 'data');
    writeQuadrants(data, 96, 32);
    const fp32 = await train(config(data, join(tmp.dir, 'fp32'), 'fp32'), { progress: quiet, backend: 'native' });
    const bf16 = await train(config(data, join(tmp.dir, 'bf16'), 'bf16'), { progress: quiet, backend: 'native' });
    assert.equal(N!.convPrecision(), 'fp32', 'the backend is back in fp32 after the run');
    const first = bf16.history[0]!.trainLoss,
      last = bf16.history.at(-1)!.trainLoss;
    assert.ok(last < 0.6 * first, `bf16 train loss did not fall: ${first} → ${last}`);
    const fp32Last = fp32.history.at(-1)!.trainLoss;
    assert.ok(Math.abs(last - fp32Last) <= 0.15 * fp32Last + 0.05, `bf16 final loss ${last} far from fp32's ${fp32Last}`);
    const top1 = (r: typeof fp32) => r.history.at(-1)!.trainTop1;
    assert.ok(Math.abs(top1(bf16) - top1(fp32)) <= 0.15, `train top-1 bf16 ${top1(bf16)} vs fp32 ${top1(fp32)}`);
    // Not the fp32 run under another name: bf16 rounding changes the losses.
    assert.notEqual(last, fp32Last);
    // Recorded: the result, every metrics line, the checkpoint and config.json.
    assert.equal(bf16.precision, 'bf16');
    assert.equal(bf16.bf16Hardware, N!.bf16Hardware());
    assert.equal(fp32.precision, 'fp32');
    const lines = readFileSync(join(tmp.dir, 'bf16', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n');
    for (const l of lines) assert.equal((JSON.parse(l) as { precision: string }).precision, 'bf16');
    assert.equal(readCheckpoint(join(tmp.dir, 'bf16')).state.config['precision'], 'bf16');
    assert.equal((JSON.parse(readFileSync(join(tmp.dir, 'bf16', 'config.json'), 'utf8')) as { precision: string }).precision, 'bf16');
    // Resuming needs the run's precision.
    await assert.rejects(
      train({ ...config(data, join(tmp.dir, 'bf16'), 'fp32'), epochs: 5 }, { progress: quiet, backend: 'native', resume: true }),
      (e: unknown) => e instanceof OptionError && /cannot resume with precision fp32: the run trained in bf16/.test(e.message),
    );
    const more = await train(
      { ...config(data, join(tmp.dir, 'bf16'), 'bf16'), epochs: 5 },
      { progress: quiet, backend: 'native', resume: true },
    );
    assert.equal(more.epochs, 5);
    assert.equal(more.precision, 'bf16');
  } finally {
    tmp.cleanup();
  }
});

test('bf16 on the reference backend and unknown precisions are OptionErrors before a step', async () => {
  const tmp = makeTempDir('bf16-refuse');
  try {
    const data = join(tmp.dir, 'data');
    writeQuadrants(data, 16, 8);
    await assert.rejects(
      train(config(data, join(tmp.dir, 'ref'), 'bf16'), { progress: quiet, backend: 'reference' }),
      (e: unknown) => e instanceof OptionError && /precision bf16 runs on the native backend/.test(e.message),
    );
    assert.equal(existsSync(join(tmp.dir, 'ref', 'checkpoint.safetensors')), false);
    await assert.rejects(
      train(config(data, join(tmp.dir, 'bad'), 'fp16' as 'bf16'), { progress: quiet, backend: 'reference' }),
      (e: unknown) => e instanceof OptionError && /precision must be one of fp32, bf16, got "fp16"/.test(e.message),
    );
  } finally {
    tmp.cleanup();
  }
});

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [bin, ...args], { timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout: string; stderr: string };
    return { code: err.code ?? -1, stdout: err.stdout, stderr: err.stderr };
  }
}

test('xception train --precision: bad values and the reference backend are refused before the run folder is made', async () => {
  const tmp = makeTempDir('bf16-cli');
  try {
    const data = join(tmp.dir, 'data');
    writeQuadrants(data, 16, 8);
    const base = ['train', '--dataset', `mnist:${data}`, '--epochs', '1', '--batch-size', '8'];
    const bad = await cli([...base, '--precision', 'fp16', '--out', join(tmp.dir, 'a')]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--precision/);
    const ref = await cli([...base, '--precision', 'bf16', '--backend', 'reference', '--out', join(tmp.dir, 'b')]);
    assert.notEqual(ref.code, 0);
    assert.match(ref.stderr, /precision bf16 runs on the native backend/);
    assert.equal(existsSync(join(tmp.dir, 'b')), false);
  } finally {
    tmp.cleanup();
  }
});

test('xception train --precision bf16 --json reports the precision, and --resume with --precision fp32 names the flag', async (t) => {
  const why = bf16Unavailable();
  if (why) return void t.skip(why);
  const tmp = makeTempDir('bf16-cli-run');
  try {
    const data = join(tmp.dir, 'data');
    writeQuadrants(data, 16, 8);
    const out = join(tmp.dir, 'run');
    const args = ['train', '--dataset', `mnist:${data}`, '--width', '0.0625', '--middle-blocks', '1', '--epochs', '1'];
    const r = await cli([...args, '--batch-size', '8', '--precision', 'bf16', '--json', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout.trim().split('\n').pop()!) as { precision: string }).precision, 'bf16');
    assert.match(r.stderr, /bf16 mixed precision \((native|emulated) on this CPU\)/);
    const again = await cli(['train', '--resume', '--out', out, '--epochs', '2', '--precision', 'fp32']);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /--precision \(the run has bf16, given fp32\)/);
  } finally {
    tmp.cleanup();
  }
});
