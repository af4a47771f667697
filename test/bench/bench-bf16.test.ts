/**
 * `xception bench --precision bf16` training rows: the bf16 step beside our fp32 step in the same
 * run, `hardware` native or emulated, and "emulated" instead of a ratio where oneDNN emulates bf16.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OptionError } from '../../src/core/errors.js';
import { loadNativeBackend, nativeBackendStatus } from '../../src/backends/onednn/index.js';
import { benchCommand } from '../../src/cli/commands/bench.js';
import { main } from '../../src/cli/main.js';

// A tiny small-stem network at 32×32: the whole pipeline in seconds.
const TINY = ['--size', '32', '--width', '0.0625', '--middle-blocks', '1', '--repeats', '1', '--warmup', '1', '--min-time', '0'];

function bf16Unavailable(): string | null {
  if (!loadNativeBackend()) return nativeBackendStatus().reason ?? 'no native backend';
  return nativeBackendStatus().bf16 === 'unsupported' ? 'no AVX-512: no bf16 convolutions' : null;
}

async function benchRows(args: string[]): Promise<Array<Record<string, unknown>>> {
  let out = '';
  assert.equal(await main(['bench', '--json', ...args], (s) => (out += s)), 0);
  return out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('bench --precision bf16: a training row beside our fp32 step, with the hardware and the ratio', async (t) => {
  const why = bf16Unavailable();
  if (why) return void t.skip(why);
  const [row, ...rest] = await benchRows(['--cases', 'train-b32-64', '--precision', 'bf16', ...TINY]);
  assert.equal(rest.length, 0);
  assert.equal(row!['precision'], 'bf16');
  assert.equal(row!['path'], 'op-by-op');
  assert.equal(row!['hardware'], nativeBackendStatus().bf16);
  const peer = row!['peer'] as { name: string; imagesPerSec: number; peakRssMB: number };
  assert.equal(peer.name, 'native fp32');
  assert.ok(peer.imagesPerSec > 0 && peer.peakRssMB > 10);
  const ratio = row!['ratio'];
  if (row!['hardware'] === 'native') assert.ok(Math.abs((ratio as number) - (row!['imagesPerSec'] as number) / peer.imagesPerSec) < 1e-9);
  else assert.equal(ratio, null);
});

test('bench --precision bf16 where oneDNN emulates bf16: hardware emulated, "emulated" instead of a ratio', async (t) => {
  const why = bf16Unavailable();
  if (why) return void t.skip(why);
  const was = process.env['ONEDNN_MAX_CPU_ISA'];
  process.env['ONEDNN_MAX_CPU_ISA'] = 'AVX512_CORE'; // the case's child processes see AVX-512 without bf16
  try {
    const [row] = await benchRows(['--cases', 'train-b32-64', '--precision', 'bf16', ...TINY]);
    assert.equal(row!['hardware'], 'emulated');
    assert.equal(row!['ratio'], null);
    assert.deepEqual(row!['ratios'], []);
    assert.ok((row!['peer'] as { imagesPerSec: number }).imagesPerSec > 0, 'the fp32 step is still measured');
    let table = '';
    assert.equal(await main(['bench', '--cases', 'train-b32-64', '--precision', 'bf16', '--no-peer', ...TINY], (s) => (table += s)), 0);
    assert.match(table, /train-b32-64 +native +op-by-op +bf16 .* emulated\n/);
  } finally {
    if (was === undefined) delete process.env['ONEDNN_MAX_CPU_ISA'];
    else process.env['ONEDNN_MAX_CPU_ISA'] = was;
  }
});

test('bench --precision bf16 --backend reference is an OptionError before anything runs', async () => {
  await assert.rejects(
    benchCommand(['--precision', 'bf16', '--backend', 'reference'], () => {}),
    (e: Error) => e instanceof OptionError && /precision bf16 runs on the native backend/.test(e.message),
  );
});
