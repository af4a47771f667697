/**
 * Corrupt weight files at the model-loading level: loadWeights must either load (a flip that only
 * touched tensor data) or throw a WeightFileError — never another error, a crash or a hang — and a
 * failed load must leave every weight of the model as it was. The readers' own fuzz tests
 * (fuzz.test.ts) check allocations; this checks what the model sees.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { noGrad } from '../../src/core/engine.js';
import { Random } from '../../src/core/random.js';
import { WeightFileError } from '../../src/io/errors.js';
import { loadWeights, saveWeights } from '../../src/io/model-weights.js';
import { xception } from '../../src/models/xception/xception.js';
import type { Model } from '../../src/nn/model.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xception-wfuzz-'));
const build = () =>
  noGrad(() => xception({ inputShape: [71, 71, 3], width: 1 / 32, middleBlocks: 0, classes: 2, seed: 1, backend: referenceBackend }));

function mutate(original: Uint8Array, r: Random, format: 'h5' | 'safetensors'): Uint8Array {
  const bytes = Uint8Array.from(original);
  const kind = r.int(format === 'safetensors' ? 5 : 3);
  switch (kind) {
    case 0: // truncated
      return bytes.subarray(0, r.int(bytes.length));
    case 1: {
      // flipped bytes, anywhere
      for (let i = 0, n = 1 + r.int(8); i < n; i++) bytes[r.int(bytes.length)] ^= 1 << r.int(8);
      return bytes;
    }
    case 2: {
      // flipped bytes in the first 4 KiB (HDF5 superblock and object headers, the safetensors header)
      for (let i = 0, n = 1 + r.int(4); i < n; i++) bytes[r.int(Math.min(4096, bytes.length))] ^= 1 << r.int(8);
      return bytes;
    }
    case 3: {
      // safetensors: a lying header length (huge, or just off)
      const view = new DataView(bytes.buffer);
      const n = view.getBigUint64(0, true);
      const lies = [2n ** 63n, 2n ** 40n, n + 1n, n - 1n, BigInt(bytes.length), 0n];
      view.setBigUint64(0, lies[r.int(lies.length)]!, true);
      return bytes;
    }
    default: {
      // safetensors: a header whose shapes or offsets declare far more than the file holds
      const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      const header = new TextDecoder().decode(bytes.subarray(8, 8 + n));
      const lied =
        r.int(2) === 0
          ? header.replace(/"shape":\[(\d+)/, '"shape":[$1000000000')
          : header.replace(/"data_offsets":\[(\d+),(\d+)\]/, (_, a: string) => `"data_offsets":[${a},${Number.MAX_SAFE_INTEGER}]`);
      const enc = new TextEncoder().encode(lied);
      const out = new Uint8Array(8 + enc.length + bytes.length - 8 - n);
      new DataView(out.buffer).setBigUint64(0, BigInt(enc.length), true);
      out.set(enc, 8);
      out.set(bytes.subarray(8 + n), 8 + enc.length);
      return out;
    }
  }
}

async function fuzz(format: 'h5' | 'safetensors', count: number): Promise<{ loaded: number; rejected: number }> {
  const model: Model = build();
  const file = path.join(tmp, `model.${format}`);
  await saveWeights(model, file, format === 'h5' ? 'keras-h5' : 'safetensors');
  const original = new Uint8Array(fs.readFileSync(file));
  const snapshot = model.weights.map((v) => Float32Array.from(v.value.data()));
  const r = new Random(format === 'h5' ? 101 : 202);
  let loaded = 0;
  let rejected = 0;
  const bad = path.join(tmp, `bad.${format}`);
  for (let i = 0; i < count; i++) {
    fs.writeFileSync(bad, mutate(original, r, format));
    try {
      await loadWeights(model, bad);
      loaded++;
      model.weights.forEach((v, k) => v.setData(snapshot[k]!)); // restore for the next round
    } catch (e) {
      if (!(e instanceof WeightFileError)) throw new Error(`mutation ${i}: ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
      assert.ok(e.message.startsWith(bad), `mutation ${i}: the error names the file: ${e.message}`);
      rejected++;
      model.weights.forEach((v, k) => assert.deepEqual(v.value.data(), snapshot[k], `mutation ${i}: ${v.name} changed by a failed load`));
    }
  }
  model.dispose();
  return { loaded, rejected };
}

test('300 corrupt safetensors weight files: loaded whole or rejected with a WeightFileError, the model untouched', async () => {
  const { loaded, rejected } = await fuzz('safetensors', 300);
  console.log(`loaded ${loaded}, rejected ${rejected}`);
  assert.equal(loaded + rejected, 300);
  assert.ok(rejected > 150, `only ${rejected} rejected`);
});

test('300 corrupt Keras H5 weight files: loaded whole or rejected with a WeightFileError, the model untouched', async () => {
  const { loaded, rejected } = await fuzz('h5', 300);
  console.log(`loaded ${loaded}, rejected ${rejected}`);
  assert.equal(loaded + rejected, 300);
  assert.ok(rejected > 100, `only ${rejected} rejected`);
});
