/**
 * ReLU keeps NaN, as PyTorch does: relu(NaN) = NaN, and its backward drops dy only where y ≤ 0
 * (so a NaN y passes dy). Max(0, NaN) = 0 would hide a diverging activation from the loss while
 * batch norm's backward turned the weights NaN. Checked on every backend present (reference,
 * native, wasm), for the plain ReLU and the fused batch norm → ReLU kernels.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, BatchNormParams, Handle } from '../../src/core/backend.js';
import { ALL_BACKENDS } from '../helpers/backends.js';

function eachBackend(name: string, body: (b: Backend) => void): void {
  for (const { name: label, load, reason } of ALL_BACKENDS) {
    test(`${name} (${label})`, (t) => {
      const b = load();
      if (!b) {
        t.skip(reason());
        return;
      }
      body(b);
    });
  }
}

const up = (b: Backend, values: number[]) => b.upload(Float32Array.from(values));
const down = (b: Backend, h: Handle, size: number) => [...b.download(h, size, 'float32')];

// Long enough (> 64 values) for the native kernels' vector loops, with the specials in the tail too.
const SPECIALS = [NaN, -1, 2, Infinity, -Infinity, 0, -0.5, NaN];
const INPUT = Array.from({ length: 80 }, (_, i) => SPECIALS[i % SPECIALS.length]!);
const reluOf = (x: number) => (Number.isNaN(x) ? NaN : Math.max(0, x));

eachBackend('relu keeps NaN and Inf and zeroes the rest of the non-positive values', (b) => {
  const y = down(b, b.relu(up(b, INPUT), INPUT.length), INPUT.length);
  assert.deepEqual(y, INPUT.map(reluOf));
});

eachBackend('reluBackward drops dy where y ≤ 0 and passes it where y is NaN or positive', (b) => {
  const y = INPUT.map(reluOf);
  const dy = INPUT.map((_, i) => i + 1);
  const dx = down(b, b.reluBackward(up(b, dy), up(b, y), y.length), y.length);
  assert.deepEqual(
    dx,
    y.map((v, i) => (v <= 0 ? 0 : dy[i]!)),
  );
  assert.equal(dx[0], 1, 'a NaN y passes dy');
});

/** rows × 2 channels: channel 0 holds one NaN, channel 1 is finite with negatives. */
function bnInput(rows: number): number[] {
  const x: number[] = [];
  for (let r = 0; r < rows; r++) x.push(r === 3 ? NaN : r / rows, Math.sin(r) * 2);
  return x;
}

eachBackend('fused batch norm → ReLU: a NaN in a channel stays NaN in its output', (b) => {
  const rows = 70;
  const p: BatchNormParams = { rows, channels: 2, epsilon: 1e-3, relu: true };
  const r = b.batchNormTrain(up(b, bnInput(rows)), up(b, [1, 1]), up(b, [0, 0]), p);
  const y = down(b, r.y, rows * 2);
  const channel = (c: number) => y.filter((_, i) => i % 2 === c);
  assert.ok(channel(0).every(Number.isNaN), 'the NaN channel (its mean is NaN) is NaN throughout');
  assert.ok(
    channel(1).every((v) => Number.isFinite(v) && v >= 0),
    'the finite channel is a ReLU output',
  );
  assert.ok(channel(1).some((v) => v === 0) && channel(1).some((v) => v > 0));
  // Inference with given (finite) statistics: only the NaN value itself stays NaN.
  const yi = down(b, b.batchNormInference(up(b, bnInput(rows)), up(b, [1, 1]), up(b, [0, 0]), up(b, [0.5, 0]), up(b, [1, 1]), p), rows * 2);
  assert.ok(Number.isNaN(yi[6]!));
  assert.equal(yi.filter(Number.isNaN).length, 1);
});

eachBackend('fused batch norm → ReLU backward counts dy where y is NaN, as reluBackward', (b) => {
  const rows = 70;
  const p: BatchNormParams = { rows, channels: 1, epsilon: 1e-3, relu: true };
  const x = Array.from({ length: rows }, (_, i) => Math.cos(i));
  const dy = Array.from({ length: rows }, (_, i) => 1 + (i % 3));
  const f = b.batchNormTrain(up(b, x), up(b, [1]), up(b, [0]), p);
  const y = down(b, f.y, rows);
  const zeroAt = y.indexOf(0);
  assert.ok(zeroAt >= 0);
  const dbetaWith = (yValues: number[]) =>
    down(b, b.batchNormBackward(up(b, dy), up(b, x), up(b, [1]), f.mean, f.variance, p, up(b, yValues)).dbeta, 1)[0]!;
  const masked = dbetaWith(y);
  const expected = y.reduce((s, v, i) => s + (v <= 0 ? 0 : dy[i]!), 0);
  assert.ok(Math.abs(masked - expected) < 1e-3, `${masked} vs ${expected}`);
  // The same y with NaN where it was 0: that row's dy now counts.
  const withNaN = y.map((v, i) => (i === zeroAt ? NaN : v));
  const passed = dbetaWith(withNaN);
  assert.ok(Math.abs(passed - (expected + dy[zeroAt]!)) < 1e-3, `${passed} vs ${expected + dy[zeroAt]!}`);
});
