import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Random } from '../../src/core/random.js';

test('same seed gives the same stream; different seeds differ', () => {
  const a = new Random(42),
    b = new Random(42),
    c = new Random(43);
  const sa = Array.from({ length: 8 }, () => a.nextUint32());
  const sb = Array.from({ length: 8 }, () => b.nextUint32());
  const sc = Array.from({ length: 8 }, () => c.nextUint32());
  assert.deepEqual(sa, sb);
  assert.notDeepEqual(sa, sc);
});

test('state round-trips mid-stream', () => {
  const a = new Random(7);
  a.normal();
  const st = a.getState();
  const next = [a.normal(), a.next(), a.int(10)];
  const b = new Random(0);
  b.setState(st);
  assert.deepEqual([b.normal(), b.next(), b.int(10)], next);
  assert.throws(() => b.setState({ s: [1, 2, 3] as unknown as [number, number, number, number], spareNormal: null }), RangeError);
});

test('uniform and normal moments are plausible', () => {
  const r = new Random(1);
  let s = 0,
    s2 = 0,
    n = 20000;
  for (let i = 0; i < n; i++) {
    const v = r.normal();
    s += v;
    s2 += v * v;
  }
  assert.ok(Math.abs(s / n) < 0.03);
  assert.ok(Math.abs(s2 / n - 1) < 0.05);
  let u = 0;
  for (let i = 0; i < n; i++) {
    const v = r.next();
    assert.ok(v >= 0 && v < 1);
    u += v;
  }
  assert.ok(Math.abs(u / n - 0.5) < 0.01);
  const p = r.permutation(100);
  assert.deepEqual(
    [...p].sort((x, y) => x - y),
    Array.from({ length: 100 }, (_, i) => i),
  );
});
