import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  confidenceInterval,
  differenceInterval,
  mean,
  predictionInterval,
  seedsNeeded,
  std,
  studentTCdf,
  studentTQuantile,
} from '../../src/experiments/stats.js';

test('Student t quantiles match the printed tables', () => {
  // Two-sided 95%: t(0.975, df) from any statistics table.
  const table: [number, number][] = [
    [1, 12.706],
    [2, 4.303],
    [3, 3.182],
    [4, 2.776],
    [9, 2.262],
    [30, 2.042],
    [1000, 1.962],
  ];
  for (const [df, t] of table) assert.ok(Math.abs(studentTQuantile(0.975, df) - t) < 1e-3, `df ${df}: ${studentTQuantile(0.975, df)}`);
  assert.ok(Math.abs(studentTCdf(0, 5) - 0.5) < 1e-12);
  assert.ok(Math.abs(studentTCdf(-2.015, 5) - 0.05) < 1e-3);
  assert.ok(Math.abs(studentTQuantile(0.025, 7) + studentTQuantile(0.975, 7)) < 1e-9);
  // Fractional degrees of freedom (Welch) lie between their integer neighbours.
  const t25 = studentTQuantile(0.975, 2.5);
  assert.ok(t25 < studentTQuantile(0.975, 2) && t25 > studentTQuantile(0.975, 3));
});

test('mean, sample sd, t interval and Welch difference interval', () => {
  assert.equal(mean([1, 2, 3, 4]), 2.5);
  assert.ok(Math.abs(std([1, 2, 3, 4]) - Math.sqrt(5 / 3)) < 1e-12);
  const ci = confidenceInterval([1, 2, 3]);
  // sd 1, n 3: margin = 4.303 / √3
  assert.ok(Math.abs(ci.margin - 4.3027 / Math.sqrt(3)) < 1e-3);
  assert.equal(ci.mean, 2);
  assert.ok(Number.isNaN(confidenceInterval([0.5]).low));
  // Equal variances and sizes: Welch df = 2(n − 1).
  const d = differenceInterval([1, 2, 3], [2, 3, 4]);
  assert.equal(d.mean, -1);
  assert.ok(Math.abs(d.df - 4) < 1e-9);
  assert.ok(Math.abs(d.margin - 2.776 * Math.sqrt(2 / 3)) < 1e-3);
  const same = differenceInterval([0.9, 0.9], [0.8, 0.8]);
  assert.equal(same.margin, 0);
  assert.ok(Math.abs(same.low - 0.1) < 1e-12);
});

test('seeds needed: the hand-worked example and the edges', () => {
  // sd 1 on both sides, the observed difference 1 away from the boundary. With n seeds each the
  // Welch interval's half-width is t(0.975, 2(n − 1)) · √(2/n):
  //   n = 8: t(0.975, 14) = 2.1448 · 0.5000 = 1.0724 (too wide)
  //   n = 9: t(0.975, 16) = 2.1199 · 0.4714 = 0.9993 (< 1: decided)
  assert.equal(seedsNeeded(1, 1, 1), 9);
  // Scale-free: the same with spreads and distance in percentage points as fractions.
  assert.equal(seedsNeeded(0.01, 0.01, 0.01), 9);
  // A far larger distance needs only the minimum; a difference on the boundary, none.
  assert.equal(seedsNeeded(1, 1, 100), 2);
  assert.equal(seedsNeeded(1, 1, 0), Infinity);
  assert.equal(seedsNeeded(0, 0, 0.001), 2);
  assert.equal(seedsNeeded(1, 1, 0.001), Infinity); // over MAX_SEEDS_NEEDED
  // One noisy side (sd 3, the other 0): df = n − 1, half-width t(0.975, n − 1) · 3/√n < 2.
  //   n = 11: 2.2281 · 0.9045 = 2.0154; n = 12: 2.2010 · 0.8660 = 1.9061.
  assert.equal(seedsNeeded(3, 0, 2), 12);
});

test('prediction interval of one more value: mean ± t·sd·√(1 + 1/n)', () => {
  // [1, 2, 3]: mean 2, sd 1, t(0.975, 2) = 4.3027 · √(4/3) = 4.9683.
  const p = predictionInterval([1, 2, 3]);
  assert.ok(Math.abs(p.margin - 4.9683) < 1e-3, String(p.margin));
  assert.ok(Math.abs(p.low - (2 - p.margin)) < 1e-12);
  assert.ok(p.margin > confidenceInterval([1, 2, 3]).margin);
  assert.ok(Number.isNaN(predictionInterval([1]).low));
});
