/** The plain SHA-256 the browser build uses gives node:crypto's digests, however the bytes are split. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { PlainSha256 } from '../../src/io/sha256.js';
import { Random } from '../../src/core/random.js';

test('PlainSha256 matches node:crypto on the padding boundaries and on split updates', () => {
  assert.equal(new PlainSha256().digest('hex'), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(new PlainSha256().update(new TextEncoder().encode('abc')).digest('hex'), createHash('sha256').update('abc').digest('hex'));
  const rng = new Random(5);
  for (const n of [1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 1000, 70_001]) {
    const bytes = Uint8Array.from({ length: n }, () => rng.int(256));
    const cut = rng.int(n + 1);
    const plain = new PlainSha256().update(bytes.subarray(0, cut)).update(bytes.subarray(cut)).digest('hex');
    assert.equal(plain, createHash('sha256').update(bytes).digest('hex'), `${n} bytes split at ${cut}`);
  }
});
