/**
 * Seeded fuzzing of the weight readers (test/helpers/fuzz.ts): mutated files (bit flips, byte
 * sets, truncation, extension, lying header fields, edited header tokens) must either read or
 * throw WeightFileError — never crash, hang, abort the process, or make the HDF5 heap grow by much
 * more than the file size. Every case requested is run (no time budget) and counted.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Random } from '../../src/core/random.js';
import { WeightFileError } from '../../src/io/errors.js';
import { h5Module } from '../../src/io/h5-runtime.js';
import { encodeKerasH5, parseKerasH5, readKerasH5 } from '../../src/io/keras-h5.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import {
  assertAtLeast,
  hasEnoughCases,
  fuzzTimeout,
  editSafetensorsHeader,
  FUZZ_SEED,
  fuzzCaseCount,
  type HeaderField,
  mutate,
  type MutationTarget,
  rejectedCount,
  runFuzz,
} from '../helpers/fuzz.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.resolve(here, '../../../test/io/fixtures');

/** HDF5 superblock (version 0): version bytes, sizes, B-tree Ks, flags, then the addresses. */
const H5_FIELDS: HeaderField[] = [
  ...[8, 9, 10, 11, 13, 14].map((at) => ({ at, size: 1 as const, littleEndian: true })),
  { at: 16, size: 2, littleEndian: true },
  { at: 18, size: 2, littleEndian: true },
  { at: 20, size: 4, littleEndian: true },
  ...[24, 32, 40, 48, 56, 64].map((at) => ({ at, size: 8 as const, littleEndian: true })),
];

test('fuzz: ≥ 1,000 mutated safetensors files read or throw WeightFileError', async (t) => {
  const rng = new Random(20261128);
  const weights = [
    { name: 'block1_conv1/kernel:0', shape: [3, 3, 3, 8], data: new Float32Array(216).map(() => rng.normal()) },
    { name: 'bn/gamma:0', shape: [8], data: new Float32Array(8).fill(1) },
    { name: 'dense/bias:0', shape: [5], data: new Float32Array(5) },
  ];
  const original = writeSafetensors(weights, { note: 'fuzz' });
  const headerEnd = 8 + Number(new DataView(original.buffer).getBigUint64(0, true));
  const target: MutationTarget = { bytes: original, hotEnd: headerEnd, fields: [{ at: 0, size: 8, littleEndian: true }] };
  const cases = fuzzCaseCount(1000);
  const tally = await runFuzz(t, {
    name: 'safetensors',
    seedOffset: 5,
    cases,
    typed: [WeightFileError],
    maxCaseMs: 5000,
    run: (r, i) => {
      const bytes = r.next() < 0.3 ? editSafetensorsHeader(r, original) : mutate(r, target).bytes;
      const out = readSafetensors(bytes, `case${i}`);
      const total = out.weights.reduce((s, w) => s + w.data.byteLength, 0);
      assert.ok(total <= bytes.length, `case ${i}: returned ${total} bytes of tensors from a ${bytes.length}-byte file`);
    },
  });
  assertAtLeast(tally, 1000, 'safetensors');
  assert.ok(!hasEnoughCases(tally) || rejectedCount(tally) > cases / 2, 'most mutations should be caught');
});

/** Fuzzes one H5 original on this thread, so the HDF5 heap can be watched (the isolated path below). */
async function fuzzH5(t: TestContext, name: string, original: Uint8Array, seedOffset: number, cases: number): Promise<void> {
  const target: MutationTarget = { bytes: original, hotEnd: 2048, fields: H5_FIELDS };
  const tally = await runFuzz(t, {
    name,
    seedOffset,
    cases,
    typed: [WeightFileError],
    maxCaseMs: 10_000,
    run: async (r, i) => {
      const bytes = mutate(r, target).bytes;
      const heapBefore = (await h5Module()).HEAPU8.length;
      try {
        const layers = await parseKerasH5(bytes, `${name}#${i}`);
        const total = layers.reduce((s, l) => s + l.weights.reduce((a, w) => a + w.data.byteLength, 0), 0);
        assert.ok(total <= bytes.length, `case ${i}: ${total} bytes of weights from a ${bytes.length}-byte file`);
      } finally {
        // The module may have been replaced after a trap; compare only within one instance.
        const heapAfter = (await h5Module()).HEAPU8.length;
        // The reader allows 2·file + 64 MiB of growth; emscripten may round a growth up by 20%.
        const allowed = 1.2 * (heapBefore + 2 * bytes.length + 64 * 1024 * 1024) + 65536;
        assert.ok(heapAfter <= Math.max(heapBefore, allowed), `${name} case ${i}: HDF5 heap grew from ${heapBefore} to ${heapAfter}`);
      }
    },
  });
  assert.ok(!hasEnoughCases(tally) || rejectedCount(tally) > 0, `${name}: ${tally.succeeded} reads, no typed errors`);
  assertAtLeast({ ...tally, cases: 2 * tally.cases }, 1000, 'H5 (both originals)');
  // The reader still works on an intact file after all that.
  assert.ok((await readKerasH5(original)).length > 0);
}

/** The two H5 originals share the H5 count: together ≥ 1,000 cases (asserted in fuzzH5). */
const H5_CASES = fuzzCaseCount(500);

test('fuzz: mutated h5py-written Keras files read or throw WeightFileError', { timeout: fuzzTimeout(500, 300_000) }, async (t) => {
  await fuzzH5(t, 'keras_style.h5', new Uint8Array(fs.readFileSync(path.join(fixtures, 'keras_style.h5'))), 7, H5_CASES);
});

test('fuzz: mutated h5wasm-written Keras files read or throw WeightFileError', { timeout: fuzzTimeout(500, 300_000) }, async (t) => {
  const rng = new Random(3);
  const bytes = await encodeKerasH5([
    { name: 'input_1', weights: [] },
    { name: 'conv', weights: [{ name: 'conv/kernel:0', shape: [3, 3, 2, 4], data: new Float32Array(72).map(() => rng.normal()) }] },
    {
      name: 'dense',
      weights: [
        { name: 'dense/kernel:0', shape: [4, 3], data: new Float32Array(12).fill(0.5) },
        { name: 'dense/bias:0', shape: [3], data: new Float32Array(3) },
      ],
    },
  ]);
  await fuzzH5(t, 'written.h5', bytes, 11, H5_CASES);
});

test('fuzz: the isolated (worker) reader returns layers or WeightFileError for mutated files', { timeout: 120_000 }, async (t) => {
  const original = new Uint8Array(fs.readFileSync(path.join(fixtures, 'keras_style.h5')));
  const target: MutationTarget = { bytes: original, hotEnd: 2048, fields: H5_FIELDS };
  const tally = await runFuzz(t, {
    name: 'isolated h5',
    seedOffset: 99,
    cases: 40,
    typed: [WeightFileError],
    maxCaseMs: 30_000,
    run: async (r, i) => {
      await readKerasH5(mutate(r, target).bytes, `isolated#${i}`);
    },
  });
  assert.equal(tally.cases, 40);
  assert.equal((await readKerasH5(original)).length, 11);
  t.diagnostic(`seed ${FUZZ_SEED}`);
});
