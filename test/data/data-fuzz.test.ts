/**
 * Seeded mutation fuzzing of the dataset readers (test/helpers/fuzz.ts): IDX files, plain and
 * gzip, and CIFAR binary batches. Every mutated dataset must load or throw a DatasetError —
 * never a TypeError, RangeError, crash or hang — and the case counts are asserted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Random } from '../../src/core/random.js';
import { loadCifar } from '../../src/data/cifar.js';
import { DatasetError } from '../../src/data/errors.js';
import { idxFileCandidates, loadIdxDataset } from '../../src/data/idx.js';
import {
  assertAtLeast,
  hasEnoughCases,
  fuzzCaseCount,
  type HeaderField,
  mutate,
  type MutationTarget,
  rejectedCount,
  runFuzz,
} from '../helpers/fuzz.js';
import { cifarBatch, idxBytes, makeImages, makeTempDir } from './fixtures.js';

const { dir: tmp } = makeTempDir('datafuzz');

/** The magic's type and rank bytes, then every dimension (big-endian u32). */
function idxFields(rank: number): HeaderField[] {
  const fields: HeaderField[] = [
    { at: 2, size: 1, littleEndian: false },
    { at: 3, size: 1, littleEndian: false },
  ];
  for (let d = 0; d < rank; d++) fields.push({ at: 4 + 4 * d, size: 4, littleEndian: false });
  return fields;
}

const COUNT = 6;
const images: MutationTarget = { bytes: idxBytes([COUNT, 5, 4], makeImages(COUNT, 5, 4)), fields: idxFields(3), hotEnd: 16 };
const labels: MutationTarget = { bytes: idxBytes([COUNT], [0, 1, 2, 3, 4, 5]), fields: idxFields(1), hotEnd: 8 };

/** A mutated IDX file: mutated then gzipped (header edits behind gzip), gzip bytes mutated, or plain. */
function mutatedIdx(rng: Random, target: MutationTarget): { bytes: Uint8Array; gzip: boolean } {
  const how = rng.int(3);
  if (how === 0) return { bytes: mutate(rng, target).bytes, gzip: false };
  if (how === 1) return { bytes: gzipSync(mutate(rng, target).bytes), gzip: true };
  const gz = gzipSync(target.bytes);
  return { bytes: mutate(rng, { bytes: gz, hotEnd: 24 }).bytes, gzip: true };
}

test('fuzz: ≥ 1,000 mutated IDX datasets (plain and gzip) load or throw DatasetError', async (t) => {
  const cases = fuzzCaseCount(1000);
  let gzipped = 0;
  const tally = await runFuzz(t, {
    name: 'idx',
    seedOffset: 1,
    cases,
    typed: [DatasetError],
    maxCaseMs: 5000,
    run: async (rng, i) => {
      const dir = path.join(tmp, `idx${i}`);
      fs.mkdirSync(dir);
      const names = idxFileCandidates(dir, 'train');
      const bad = rng.int(3); // 0: images, 1: labels, 2: both
      const img = bad !== 1 ? mutatedIdx(rng, images) : { bytes: images.bytes, gzip: false };
      const lab = bad !== 0 ? mutatedIdx(rng, labels) : { bytes: labels.bytes, gzip: false };
      if (img.gzip || lab.gzip) gzipped++;
      // Candidates alternate plain and .gz names: a gzip goes under a .gz name, as downloaded.
      fs.writeFileSync(names.images[img.gzip ? 1 : 0]!, img.bytes);
      fs.writeFileSync(names.labels[lab.gzip ? 1 : 0]!, lab.bytes);
      try {
        const ds = await loadIdxDataset(dir, 'train');
        assert.equal(ds.images.length, ds.count * ds.height * ds.width);
      } finally {
        fs.rmSync(dir, { recursive: true });
      }
    },
  });
  assertAtLeast(tally, 1000, 'idx');
  assert.ok(!hasEnoughCases(tally) || gzipped > cases / 3, `only ${gzipped} cases had a gzip file`);
  assert.ok(!hasEnoughCases(tally) || rejectedCount(tally) > cases / 2, 'most mutations must be caught');
});

test('fuzz: ≥ 1,000 mutated CIFAR binary batches load or throw DatasetError', async (t) => {
  const cases = fuzzCaseCount(1000);
  const variants = ['cifar10', 'cifar100'] as const;
  const record = { cifar10: 3073, cifar100: 3074 };
  const target = (v: (typeof variants)[number]): MutationTarget => {
    // Label bytes of each record, as header fields: out-of-range labels are the format's only field.
    const fields: HeaderField[] = [0, 1, 2].flatMap((r) =>
      (v === 'cifar10' ? [0] : [0, 1]).map((k) => ({ at: r * record[v] + k, size: 1 as const, littleEndian: false })),
    );
    return { bytes: cifarBatch(3, v), fields, hotEnd: 2 };
  };
  const targets = { cifar10: target('cifar10'), cifar100: target('cifar100') };
  const tally = await runFuzz(t, {
    name: 'cifar',
    seedOffset: 2,
    cases,
    typed: [DatasetError],
    maxCaseMs: 5000,
    run: async (rng, i) => {
      const variant = variants[rng.int(2)]!;
      const dir = path.join(tmp, `cifar${i}`);
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, variant === 'cifar10' ? 'test_batch.bin' : 'test.bin'), mutate(rng, targets[variant]).bytes);
      if (rng.next() < 0.1)
        fs.writeFileSync(
          path.join(dir, variant === 'cifar10' ? 'batches.meta.txt' : 'fine_label_names.txt'),
          mutate(rng, { bytes: Buffer.from('a\nb\nc\n') }).bytes,
        );
      try {
        const ds = await loadCifar(dir, variant, 'test');
        assert.equal(ds.images.length, ds.count * 32 * 32 * 3);
        assert.ok(ds.labels.every((l) => l >= 0 && l < ds.classes));
      } finally {
        fs.rmSync(dir, { recursive: true });
      }
    },
  });
  assertAtLeast(tally, 1000, 'cifar');
  assert.ok(!hasEnoughCases(tally) || rejectedCount(tally) > cases / 2, 'most mutations must be caught');
});
