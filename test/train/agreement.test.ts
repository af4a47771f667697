/** sameTop1: the share of identical predictions that eval reports beside a bf16/int8 evaluation. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ShapeError } from '../../src/core/errors.js';
import { sameTop1 } from '../../src/train/metrics.js';

test('sameTop1 counts rows with the same arg-max, the first index on ties', () => {
  // 4 rows × 3 classes: rows 0 and 3 agree; row 1 differs (2 vs 0); row 2 ties in b → index 0 ≠ 1.
  const a = Float32Array.from([0.1, 0.7, 0.2, 0.1, 0.2, 0.9, 0.3, 0.4, 0.3, 5, -1, 0]);
  const b = Float32Array.from([0.0, 0.9, 0.1, 0.8, 0.1, 0.1, 0.5, 0.5, 0.0, 2, 1, 1]);
  assert.equal(sameTop1(a, b, 3), 2);
  assert.equal(sameTop1(a, a, 3), 4);
  assert.throws(() => sameTop1(a, b.subarray(3), 3), ShapeError);
  assert.throws(() => sameTop1(a.subarray(1), b.subarray(1), 3), ShapeError);
});
