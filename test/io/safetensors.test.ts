import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Random } from '../../src/core/random.js';
import { WeightFileError } from '../../src/io/errors.js';
import {
  readSafetensors,
  readSafetensorsFile,
  writeSafetensors,
  writeSafetensorsFile,
  writeSafetensorsFileSync,
  readSafetensorsFileSync,
} from '../../src/io/safetensors.js';
import type { NamedWeight } from '../../src/io/weights.js';

function randomWeights(rng: Random): NamedWeight[] {
  const shapes: Array<[string, number[]]> = [
    ['block1_conv1/kernel:0', [3, 3, 3, 32]],
    ['block1_conv1_bn/gamma:0', [32]],
    ['block2_sepconv1/depthwise_kernel:0', [3, 3, 64, 1]],
    ['scalar', []],
    ['empty', [0, 5]],
    ['7', [2]], // integer-like name: JS objects would reorder it; the file order must survive
  ];
  return shapes.map(([name, shape]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = rng.normal();
    return { name, shape, data };
  });
}

function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

test('safetensors round trip is bit for bit, keeps order, metadata and special floats', () => {
  const weights = randomWeights(new Random(1));
  weights[0]!.data[0] = NaN;
  weights[0]!.data[1] = -0;
  weights[0]!.data[2] = Infinity;
  weights[0]!.data[3] = 1e-45; // subnormal
  const bytes = writeSafetensors(weights, { format: 'pt', step: '12' });
  const header = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(header % 8, 0, 'data buffer is 8-byte aligned');
  const back = readSafetensors(bytes);
  assert.deepEqual(back.metadata, { format: 'pt', step: '12' });
  assert.deepEqual(
    back.weights.map((w) => w.name),
    weights.map((w) => w.name),
  );
  for (let i = 0; i < weights.length; i++) {
    assert.deepEqual(back.weights[i]!.shape, weights[i]!.shape);
    assert.ok(bitsEqual(back.weights[i]!.data, weights[i]!.data), weights[i]!.name);
  }
});

test('safetensors reads data at an unaligned offset of a larger buffer', () => {
  const weights = randomWeights(new Random(2));
  const bytes = writeSafetensors(weights);
  const big = new Uint8Array(bytes.length + 3);
  big.set(bytes, 3);
  const back = readSafetensors(big.subarray(3));
  assert.ok(bitsEqual(back.weights[0]!.data, weights[0]!.data));
});

function withHeader(header: unknown, dataBytes: number, rawHeader?: string): Uint8Array {
  const json = new TextEncoder().encode(rawHeader ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

function rejects(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(
    () => readSafetensors(bytes, 'bad.safetensors'),
    (e: unknown) => {
      assert.ok(e instanceof WeightFileError, `expected WeightFileError, got ${e}`);
      assert.match(e.message, /^bad\.safetensors: /);
      assert.match(e.message, pattern);
      return true;
    },
  );
}

test('safetensors rejects malformed headers with a clear typed error', () => {
  rejects(new Uint8Array(5), /too short/);
  const lying = new Uint8Array(16);
  new DataView(lying.buffer).setBigUint64(0, 1n << 62n, true);
  rejects(lying, /header length \d+ exceeds/);
  rejects(withHeader(null, 0, '{"a": '), /not valid JSON/);
  rejects(withHeader([1, 2], 0), /not an object/);
  rejects(withHeader({ a: { dtype: 'F16', shape: [1], data_offsets: [0, 2] } }, 2), /dtype F16; only F32/);
  rejects(withHeader({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4), /non-negative integers/);
  rejects(withHeader({ a: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, 4), /non-negative integers/);
  rejects(withHeader({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, 4), /needs 8 bytes/);
  rejects(withHeader({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 0), /beyond the 0-byte data buffer/);
  rejects(withHeader({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, 4), /end before begin/);
  rejects(
    withHeader({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 4),
    /overlaps/,
  );
  rejects(withHeader({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8), /belong to no tensor/);
  rejects(withHeader({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 8), /trailing bytes/);
  rejects(
    withHeader(null, 8, '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'),
    /duplicate entry "a"/,
  );
  rejects(withHeader({ __metadata__: { a: 1 } }, 0), /metadata value for "a" is not a string/);
  rejects(withHeader({ a: { dtype: 'F32', shape: [1e300, 1e300], data_offsets: [0, 4] } }, 4), /non-negative integers/);
});

test('safetensors writer refuses inconsistent weights', () => {
  assert.throws(() => writeSafetensors([{ name: 'a', shape: [3], data: new Float32Array(2) }]), WeightFileError);
  assert.throws(
    () =>
      writeSafetensors([
        { name: 'a', shape: [1], data: new Float32Array(1) },
        { name: 'a', shape: [1], data: new Float32Array(1) },
      ]),
    /duplicate/,
  );
});

test('safetensors file helpers write atomically and read back', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xception-st-'));
  try {
    const file = path.join(dir, 'w.safetensors');
    const weights = randomWeights(new Random(3));
    await writeSafetensorsFile(file, weights, { epoch: '1' });
    writeSafetensorsFileSync(file, weights.slice(0, 2), { epoch: '2' }); // overwrite in place
    assert.deepEqual(fs.readdirSync(dir), ['w.safetensors'], 'no temp file left behind');
    const back = await readSafetensorsFile(file);
    assert.equal(back.metadata.epoch, '2');
    assert.equal(back.weights.length, 2);
    assert.ok(bitsEqual(readSafetensorsFileSync(file).weights[1]!.data, weights[1]!.data));
    await assert.rejects(readSafetensorsFile(path.join(dir, 'missing')), WeightFileError);
    // A failed write (target directory missing) leaves nothing behind and throws.
    await assert.rejects(writeSafetensorsFile(path.join(dir, 'nope', 'x.safetensors'), weights));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const fixtures = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../test/io/fixtures');

test('reads files written by the reference safetensors implementation', () => {
  const { weights, metadata } = readSafetensorsFileSync(path.join(fixtures, 'reference.safetensors'));
  assert.deepEqual(metadata, { format: 'np', source: 'make_safetensors_fixtures.py' });
  assert.deepEqual(
    weights.map((w) => [w.name, w.shape]),
    [
      ['block1_conv1/kernel:0', [3, 3, 3, 4]],
      ['predictions/bias:0', [5]],
      ['scalar', []],
    ],
  );
  for (const w of weights)
    assert.deepEqual(
      w.data,
      Float32Array.from({ length: w.data.length }, (_, i) => 0.25 * i - 3),
      w.name,
    );
  assert.throws(
    () => readSafetensorsFileSync(path.join(fixtures, 'reference_f16.safetensors')),
    /reference_f16\.safetensors: entry "half" has dtype F16; only F32 is supported/,
  );
});
