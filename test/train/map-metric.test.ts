/** MAP@k (the paper's MAP@100, per class over the ranked images) against a hand-computed example. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { averagePrecisionAtK, meanAveragePrecision } from '../../src/train/metrics.js';

// 5 images × 2 classes. Class 0 ranks the images 0, 1, 2, 3, 4 with positives 0, 2, 3;
// class 1 ranks them 4, 3, 2, 1, 0 with the one positive at image 1 (rank 4).
const SCORES = [0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4, 0.5, 0.5];
const TARGETS = [1, 0, 0, 1, 1, 0, 1, 0, 0, 0];

test('AP@k by hand: class 0 = (1/1 + 2/3 + 3/4) / 3; class 1 = (1/4) / 1; cut at k', () => {
  const close = (a: number | null, b: number) => assert.ok(a !== null && Math.abs(a - b) < 1e-12, `${a} vs ${b}`);
  close(averagePrecisionAtK(SCORES, TARGETS, 2, 0, 100), (1 + 2 / 3 + 3 / 4) / 3);
  close(averagePrecisionAtK(SCORES, TARGETS, 2, 1, 100), 1 / 4);
  // At k = 2 only the first two ranks count, and the divisor is min(k, positives) = 2.
  close(averagePrecisionAtK(SCORES, TARGETS, 2, 0, 2), 1 / 2);
  close(averagePrecisionAtK(SCORES, TARGETS, 2, 1, 3), 0);
  const m = meanAveragePrecision(SCORES, TARGETS, 2, 100);
  assert.ok(Math.abs(m.map - ((1 + 2 / 3 + 3 / 4) / 3 + 1 / 4) / 2) < 1e-12);
  assert.equal(m.perClass.length, 2);
});

test('a class with no positive is left out of the mean (NaN in perClass); perfect ranking scores 1', () => {
  const m = meanAveragePrecision([0.9, 0.1, 0.2, 0.8], [1, 0, 1, 0], 2, 100);
  assert.equal(m.map, 1);
  assert.ok(Number.isNaN(m.perClass[1]!));
  assert.ok(Number.isNaN(meanAveragePrecision([0.5, 0.5], [0, 0], 2).map));
  // Ties rank in image order: a constant score puts the positive image 1 second.
  assert.equal(meanAveragePrecision([0, 0], [0, 1], 1).map, 1 / 2);
});

test('map@k refuses mismatched sizes and a bad k', () => {
  assert.throws(() => meanAveragePrecision([1, 2, 3], [1, 0], 2), /3 scores and 2 targets/);
  assert.throws(() => meanAveragePrecision([1], [1], 1, 0), /k must be a positive integer/);
});
