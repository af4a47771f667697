/** The SHA-256 of the tensor data that files written here record: every flipped data bit is caught. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Random } from '../../src/core/random.js';
import { WeightFileError } from '../../src/io/errors.js';
import { DATA_SHA256_KEY, readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import type { NamedWeight } from '../../src/io/weights.js';

function someWeights(rng: Random): NamedWeight[] {
  return [
    { name: 'conv/kernel', shape: [3, 3, 2, 4], data: new Float32Array(72).map(() => rng.normal()) },
    { name: 'bn/gamma', shape: [4], data: new Float32Array(4).fill(1) },
    { name: 'dense/bias', shape: [5], data: new Float32Array(5) },
  ];
}

const dataStartOf = (bytes: Uint8Array): number => 8 + Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));

test('300 single-bit flips in the tensor data of a file written here: 300 WeightFileErrors naming the corruption', () => {
  const rng = new Random(16);
  const original = writeSafetensors(someWeights(rng), { note: 'x' });
  const back = readSafetensors(original, 'intact');
  assert.deepEqual(back.metadata, { note: 'x' }, 'the checksum is not handed on as metadata');
  assert.match(back.dataSha256 ?? '', /^[0-9a-f]{64}$/);
  const start = dataStartOf(original);
  let caught = 0;
  for (let i = 0; i < 300; i++) {
    const bytes = Uint8Array.from(original);
    const at = start + rng.int(bytes.length - start);
    bytes[at]! ^= 1 << rng.int(8);
    assert.throws(
      () => readSafetensors(bytes, `flip${i}`),
      (e: unknown) =>
        e instanceof WeightFileError && /^flip\d+: tensor data is corrupt: its SHA-256 is [0-9a-f]{64}, the file records/.test(e.message),
      `flip ${i} at byte ${at}`,
    );
    caught++;
  }
  assert.equal(caught, 300);
});

test('files without a recorded checksum (written elsewhere) still load; a malformed one is an error', () => {
  const weights = someWeights(new Random(3));
  const bytes = writeSafetensors(weights);
  // Rewrite the header without the checksum, as another writer would: same data, no hash.
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, dataStartOf(bytes)))) as Record<string, unknown>;
  delete header['__metadata__'];
  const rewrite = (h: unknown): Uint8Array => {
    const json = new TextEncoder().encode(JSON.stringify(h));
    const out = new Uint8Array(8 + json.length + bytes.length - dataStartOf(bytes));
    new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
    out.set(json, 8);
    out.set(bytes.subarray(dataStartOf(bytes)), 8 + json.length);
    return out;
  };
  const foreign = rewrite(header);
  foreign[foreign.length - 1]! ^= 1; // unverifiable, so it loads
  const read = readSafetensors(foreign);
  assert.equal(read.dataSha256, undefined);
  assert.equal(read.weights.length, 3);
  assert.throws(
    () => readSafetensors(rewrite({ ...header, __metadata__: { [DATA_SHA256_KEY]: 'abc' } }), 'bad'),
    /bad: metadata "data_sha256" is not a SHA-256 in hex/,
  );
});
