/**
 * Seeded, time-bounded fuzzing of the weight readers: mutated files (truncated, flipped bytes,
 * lying headers, huge declared sizes) must either read or throw WeightFileError — never crash,
 * hang, abort the process, or make the HDF5 heap grow by much more than the file size.
 */
import { test, TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Random } from '../../src/core/random.js';
import { WeightFileError } from '../../src/io/errors.js';
import { h5Module } from '../../src/io/h5-runtime.js';
import { encodeKerasH5, parseKerasH5, readKerasH5 } from '../../src/io/keras-h5.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.resolve(here, '../../../test/io/fixtures');
/** XCEPTION_FUZZ_CASES / XCEPTION_FUZZ_SEED widen a run by hand; CI uses the defaults. */
const CASES = Number(process.env.XCEPTION_FUZZ_CASES ?? 300);
const SEED = Number(process.env.XCEPTION_FUZZ_SEED ?? 0);
/** Stop early (still passing) if a slow machine would exceed this. */
const BUDGET_MS = Number(process.env.XCEPTION_FUZZ_BUDGET_MS ?? 60_000);

function mutate(rng: Random, original: Uint8Array, hotEnd: number): Uint8Array {
  const bytes = original.slice();
  const pos = () => (rng.next() < 0.6 ? rng.int(Math.min(hotEnd, bytes.length)) : rng.int(bytes.length));
  switch (rng.int(6)) {
    case 0: // truncated
      return bytes.subarray(0, rng.int(bytes.length));
    case 1: { // a few flipped bits
      const n = 1 + rng.int(8);
      for (let i = 0; i < n; i++) bytes[pos()]! ^= 1 << rng.int(8);
      return bytes;
    }
    case 2: { // random bytes over a short span
      const at = pos();
      for (let i = 0; i < 1 + rng.int(16) && at + i < bytes.length; i++) bytes[at + i] = rng.int(256);
      return bytes;
    }
    case 3: { // a huge or lying 64-bit little-endian number (sizes, offsets, lengths)
      const at = Math.min(pos(), bytes.length - 8);
      const view = new DataView(bytes.buffer, bytes.byteOffset);
      const choices = [0xffffffffffffffffn, 1n << 40n, 1n << 31n, BigInt(bytes.length) * 2n, 0n, BigInt(rng.nextUint32())];
      if (at >= 0) view.setBigUint64(at, choices[rng.int(choices.length)]!, true);
      return bytes;
    }
    case 4: { // a 32-bit number set to a large value
      const at = Math.min(pos(), bytes.length - 4);
      if (at >= 0) new DataView(bytes.buffer, bytes.byteOffset).setUint32(at, [0xffffffff, 0x7fffffff, 0x10000000][rng.int(3)]!, true);
      return bytes;
    }
    default: { // a copied span (duplicated structure in the wrong place)
      const from = rng.int(bytes.length);
      const to = pos();
      const len = Math.min(1 + rng.int(64), bytes.length - from, bytes.length - to);
      bytes.copyWithin(to, from, from + len);
      return bytes;
    }
  }
}

test('fuzz: mutated safetensors files read or throw WeightFileError', (t) => {
  const rng = new Random(20261128 + SEED);
  const weights = [
    { name: 'block1_conv1/kernel:0', shape: [3, 3, 3, 8], data: new Float32Array(216).map(() => rng.normal()) },
    { name: 'bn/gamma:0', shape: [8], data: new Float32Array(8).fill(1) },
    { name: 'dense/bias:0', shape: [5], data: new Float32Array(5) },
  ];
  const original = writeSafetensors(weights, { note: 'fuzz' });
  const headerEnd = 8 + Number(new DataView(original.buffer).getBigUint64(0, true));
  const start = Date.now();
  let ok = 0;
  let typed = 0;
  for (let i = 0; i < 2 * CASES && Date.now() - start < BUDGET_MS; i++) {
    const bytes = mutate(rng, original, headerEnd);
    try {
      const out = readSafetensors(bytes, `case${i}`);
      const total = out.weights.reduce((s, w) => s + w.data.byteLength, 0);
      assert.ok(total <= bytes.length, `case ${i}: returned ${total} bytes of tensors from a ${bytes.length}-byte file`);
      ok++;
    } catch (e) {
      if (!(e instanceof WeightFileError)) throw new Error(`case ${i}: ${String(e)} is not a WeightFileError`);
      typed++;
    }
  }
  assert.ok(typed > CASES / 2, `most mutations should be caught (${typed} errors, ${ok} reads)`);
  t.diagnostic(`safetensors: ${ok} mutated files read, ${typed} rejected with WeightFileError`);
});

async function fuzzH5(t: TestContext, name: string, original: Uint8Array, seed: number): Promise<void> {
  const rng = new Random(seed + SEED);
  const start = Date.now();
  let ok = 0;
  let typed = 0;
  let worst = 0;
  for (let i = 0; i < CASES && Date.now() - start < BUDGET_MS; i++) {
    const bytes = mutate(rng, original, 2048);
    const heapBefore = (await h5Module()).HEAPU8.length;
    const t0 = Date.now();
    try {
      // On this thread, so the HDF5 heap can be watched; the isolated path is fuzzed below.
      const layers = await parseKerasH5(bytes, `${name}#${i}`);
      const total = layers.reduce((s, l) => s + l.weights.reduce((a, w) => a + w.data.byteLength, 0), 0);
      assert.ok(total <= bytes.length, `case ${i}: ${total} bytes of weights from a ${bytes.length}-byte file`);
      ok++;
    } catch (e) {
      if (!(e instanceof WeightFileError)) throw new Error(`${name} case ${i}: ${String(e)} is not a WeightFileError`);
      typed++;
    }
    worst = Math.max(worst, Date.now() - t0);
    // The module may have been replaced after a trap; compare only within one instance.
    const heapAfter = (await h5Module()).HEAPU8.length;
    // The reader allows 2·file + 64 MiB of growth; emscripten may round a growth up by 20%.
    const allowed = 1.2 * (heapBefore + 2 * bytes.length + 64 * 1024 * 1024) + 65536;
    assert.ok(heapAfter <= Math.max(heapBefore, allowed), `${name} case ${i}: HDF5 heap grew from ${heapBefore} to ${heapAfter}`);
  }
  assert.ok(typed > 0, `${name}: ${ok} reads, ${typed} typed errors`);
  t.diagnostic(`${name}: ${ok} mutated files read, ${typed} rejected with WeightFileError, slowest ${worst} ms`);
  assert.ok(worst < 10_000, `${name}: slowest case took ${worst} ms`);
  // The reader still works on an intact file after all that.
  assert.ok((await readKerasH5(original)).length > 0);
}

test('fuzz: mutated h5py-written Keras files read or throw WeightFileError', { timeout: 180_000 }, async (t) => {
  await fuzzH5(t, 'keras_style.h5', new Uint8Array(fs.readFileSync(path.join(fixtures, 'keras_style.h5'))), 7);
});

test('fuzz: mutated h5wasm-written Keras files read or throw WeightFileError', { timeout: 180_000 }, async (t) => {
  const rng = new Random(3);
  const bytes = await encodeKerasH5([
    { name: 'input_1', weights: [] },
    { name: 'conv', weights: [{ name: 'conv/kernel:0', shape: [3, 3, 2, 4], data: new Float32Array(72).map(() => rng.normal()) }] },
    { name: 'dense', weights: [{ name: 'dense/kernel:0', shape: [4, 3], data: new Float32Array(12).fill(0.5) }, { name: 'dense/bias:0', shape: [3], data: new Float32Array(3) }] },
  ]);
  await fuzzH5(t, 'written.h5', bytes, 11);
});

test('fuzz: the isolated (worker) reader returns layers or WeightFileError for mutated files', { timeout: 120_000 }, async () => {
  const original = new Uint8Array(fs.readFileSync(path.join(fixtures, 'keras_style.h5')));
  const rng = new Random(99 + SEED);
  for (let i = 0; i < 40; i++) {
    const bytes = mutate(rng, original, 2048);
    try {
      await readKerasH5(bytes, `isolated#${i}`);
    } catch (e) {
      if (!(e instanceof WeightFileError)) throw new Error(`isolated case ${i}: ${String(e)} is not a WeightFileError`);
    }
  }
  assert.equal((await readKerasH5(original)).length, 11);
});
