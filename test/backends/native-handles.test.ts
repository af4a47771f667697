/**
 * The native (oneDNN) backend's failure behaviour: a missing addon, disposed handles, wrong sizes and bad
 * parameters give typed errors (checked in TypeScript first, and again in native code), never a
 * crash; handles that are merely dropped are freed by the garbage collector.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { referenceBackend as R } from '../../src/backends/reference/index.js';
import { type NativeBackend, loadNativeBackend, nativeBackendStatus } from '../../src/backends/onednn/index.js';
import { type NativeAddon, loadAddon } from '../../src/backends/onednn/binding.js';
import { BackendError, DisposedError, OptionError, ShapeError } from '../../src/core/errors.js';
import { convParams } from '../helpers/params.js';

const N = loadNativeBackend();
const indexUrl = new URL('../../src/backends/onednn/index.js', import.meta.url).href;

function nativeTest(name: string, body: (n: NativeBackend) => void): void {
  test(name, (t) => {
    if (!N) {
      t.skip(nativeBackendStatus().reason);
      return;
    }
    body(N);
  });
}

/** Runs an ES module snippet in a fresh Node process; returns its stdout parsed as JSON. */
function child(code: string, env: Record<string, string> = {}, nodeArgs: string[] = []): unknown {
  const r = spawnSync(process.execPath, [...nodeArgs, '--input-type=module', '-e', code], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 60_000,
  });
  assert.equal(r.status, 0, `child process failed (status ${r.status}, signal ${r.signal}):\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

const f32 = (values: number[]) => Float32Array.from(values);

test('the loader never throws; its status says whether the backend is available and why not', () => {
  const s = nativeBackendStatus();
  assert.equal(typeof s.available, 'boolean');
  if (s.available) {
    assert.ok(N);
    assert.match(s.onednn ?? '', /^\d+\.\d+\.\d+$/);
  } else {
    assert.equal(N, null);
    assert.ok(s.reason && s.reason.length > 0);
  }
});

test('a missing or disabled addon gives null, a stated reason and a BackendError, not a crash', () => {
  const code = `
    const m = await import(${JSON.stringify(indexUrl)});
    let error = null;
    try { m.requireNativeBackend(); } catch (e) { error = e.name + ': ' + e.message; }
    console.log(JSON.stringify({ status: m.nativeBackendStatus(), backend: m.loadNativeBackend(), error }));`;
  const missing = child(code, { XCEPTION_NATIVE_ADDON: fileURLToPath(new URL('./no-such-addon.node', import.meta.url)) }) as {
    status: { available: boolean; reason: string };
    backend: null;
    error: string;
  };
  assert.equal(missing.status.available, false);
  assert.equal(missing.backend, null);
  assert.match(missing.status.reason, /native addon not built: .*no-such-addon\.node is missing/);
  assert.match(missing.error, /^BackendError: native backend unavailable: native addon not built/);

  const disabled = child(code, { XCEPTION_NATIVE: '0' }) as { status: { available: boolean; reason: string } };
  assert.equal(disabled.status.available, false);
  assert.match(disabled.status.reason, /disabled by XCEPTION_NATIVE=0/);

  // A file that is not a loadable addon: a reason, still no throw at import.
  const dir = mkdtempSync(path.join(tmpdir(), 'xception-native-'));
  const junk = path.join(dir, 'junk.node');
  writeFileSync(junk, 'not a shared library');
  const broken = child(code, { XCEPTION_NATIVE_ADDON: junk }) as { status: { available: boolean; reason: string } };
  rmSync(dir, { recursive: true, force: true });
  assert.equal(broken.status.available, false);
  assert.match(broken.status.reason, /failed to load/);
  // Only .node files are ever opened (a JavaScript file would otherwise run).
  const script = child(code, { XCEPTION_NATIVE_ADDON: fileURLToPath(import.meta.url) }) as {
    status: { available: boolean; reason: string };
  };
  assert.equal(script.status.available, false);
  assert.match(script.status.reason, /must end in \.node/);
});

nativeTest('disposed handles give DisposedError on every use; disposing twice is harmless', (n) => {
  const before = n.stats().buffers;
  const x = n.upload(f32([1, -2, 3, -4]));
  const w = n.upload(f32([1]));
  assert.equal(n.stats().buffers, before + 2);
  n.dispose(x);
  assert.equal(n.stats().buffers, before + 1, 'dispose frees the native buffer at once');
  n.dispose(x);
  assert.throws(() => n.relu(x, 4), DisposedError);
  assert.throws(() => n.download(x, 4, 'float32'), DisposedError);
  assert.throws(
    () => n.axpby(x, x, 1, 1, 4),
    (e) => e instanceof DisposedError && /axpby: a was disposed/.test(e.message),
  );
  const p = convParams({ height: 2, width: 2, inChannels: 1, outChannels: 1, kernel: [1, 1], padding: 'valid' });
  n.dispose(w);
  const x2 = n.upload(f32([1, 2, 3, 4]));
  assert.throws(
    () => n.conv2d(x2, w, p),
    (e) => e instanceof DisposedError && /filter was disposed/.test(e.message),
  );
  n.dispose(x2);
  assert.equal(n.stats().buffers, before);
});

nativeTest('wrong sizes and bad parameters give typed errors before any native call', (n) => {
  const x = n.upload(f32([1, 2, 3, 4]));
  assert.throws(
    () => n.relu(x, 5),
    (e) => e instanceof ShapeError && /relu: x has 4 elements, the parameters need 5/.test(e.message),
  );
  assert.throws(() => n.download(x, 3, 'float32'), ShapeError);
  const p = convParams({ height: 2, width: 2, inChannels: 1, outChannels: 2, kernel: [1, 1], padding: 'valid' });
  const w1 = n.upload(f32([1]));
  assert.throws(
    () => n.conv2d(x, w1, p),
    (e) => e instanceof ShapeError && /filter has 1 elements, the parameters need 2/.test(e.message),
  );
  const w2 = n.upload(f32([1, 2]));
  assert.throws(
    () => n.conv2d(x, w2, { ...p, outHeight: 3 }),
    (e) => e instanceof ShapeError && /output height 3 does not follow/.test(e.message),
  );
  assert.throws(() => n.conv2d(x, w2, { ...p, strideHeight: 1.5 }), ShapeError);
  assert.throws(() => n.conv2d(x, w2, { ...p, groups: 2, inChannels: 1 }), ShapeError);
  assert.throws(() => n.batchNormTrain(x, w1, w1, { rows: 2, channels: 2, epsilon: 1e-3 }), ShapeError);
  assert.throws(() => n.batchNormTrain(x, w2, w2, { rows: 2, channels: 2, epsilon: 0 }), OptionError);
  assert.throws(() => n.elu(x, -1, 4), OptionError);
  const ce = { rows: 2, channels: 2, labelSmoothing: 0 };
  assert.throws(
    () => n.softmaxCrossEntropy(x, Int32Array.from([0, 2]), ce),
    (e) => e instanceof ShapeError && /label 2 at row 1/.test(e.message),
  );
  assert.throws(() => n.softmaxCrossEntropy(x, Int32Array.from([0]), ce), ShapeError);
  assert.throws(() => n.softmaxCrossEntropy(x, Int32Array.from([0, 1]), { ...ce, labelSmoothing: 2 }), OptionError);
  assert.throws(() => n.sliceChannels(x, { rows: 2, channels: 2 }, 1, 2), ShapeError);
  assert.throws(
    () =>
      n.maxPool2d(x, {
        batch: 1,
        inHeight: 2,
        inWidth: 2,
        channels: 1,
        outHeight: 2,
        outWidth: 2,
        windowHeight: 1,
        windowWidth: 1,
        strideHeight: 1,
        strideWidth: 1,
        padTop: 1,
        padLeft: 0,
        padBottom: 0,
        padRight: 0,
      }),
    ShapeError,
  );
  const sgd = { kind: 'sgd', lr: 0.1, momentum: 0.9, nesterov: false, weightDecay: 0 } as const;
  assert.throws(
    () => n.applyUpdate(sgd, x, x, [], 4, 1),
    (e) => e instanceof ShapeError && /1 state buffers|0 state buffers, expected 1/.test(e.message),
  );
  assert.throws(() => n.applyUpdate({ ...sgd, lr: Number.NaN }, x, x, [x], 4, 1), OptionError);
  assert.throws(() => n.applyUpdate({ kind: 'lion' } as never, x, x, [], 4, 1), OptionError);
  assert.throws(() => n.applyUpdate(sgd, x, w1, [x], 4, 1), ShapeError);
  // float32 only, and only its own handles.
  assert.throws(() => n.upload(Float64Array.from([1])), BackendError);
  assert.throws(() => n.download(x, 4, 'float64'), BackendError);
  assert.throws(() => n.zeros(4, 'float64'), BackendError);
  assert.throws(
    () => n.relu(R.upload(f32([1])), 1),
    (e) => e instanceof BackendError && /not a handle of the native backend/.test(e.message),
  );
  // Everything above was refused; the backend still computes.
  assert.deepEqual(Array.from(n.download(n.relu(n.upload(f32([-1, 2])), 2), 2, 'float32')), [0, 2]);
});

nativeTest('native code checks sizes and parameters itself and throws instead of crashing', () => {
  const loaded = loadAddon();
  assert.ok(loaded.addon);
  const a: NativeAddon = loaded.addon;
  const native = (f: () => unknown, pattern: RegExp) =>
    assert.throws(f, (e: unknown) => e instanceof Error && 'code' in e && /^ERR_/.test(String(e.code)) && pattern.test(e.message));
  const four = a.upload(f32([1, -2, 3, -4]));
  native(() => a.run('relu', [four], [5], undefined), /relu: input x has 4 elements, parameters need 5/);
  native(() => a.run('relu', [four], [Number.NaN], undefined), /size must be an integer/);
  native(() => a.run('relu', [four], [], undefined), /expected 1 numeric parameters/);
  native(() => a.run('relu', [four, four], [4], undefined), /expected 1 input buffers/);
  native(() => a.run('nope', [four], [4], undefined), /unknown kernel nope/);
  native(() => a.run('relu', [{} as never], [4], undefined), /not a native buffer handle/);
  native(() => a.run('relu', [f32([1]) as never], [1], undefined), /not a native buffer handle/);
  native(() => a.run('relu', [four], ['4' as never], undefined), /not a number/);
  // conv: 18 numbers, checked for consistency; a filter one element short is refused.
  const conv = [1, 2, 2, 1, 2, 2, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1];
  const w8 = a.upload(new Float32Array(8));
  native(() => a.run('conv2d', [four, w8], conv, undefined), /filter has 8 elements, parameters need 9/);
  const w9 = a.upload(new Float32Array(9));
  native(
    () =>
      a.run(
        'conv2d',
        [four, w9],
        conv.map((v, i) => (i === 4 ? 3 : v)),
        undefined,
      ),
    /output height 3 does not match/,
  );
  native(
    () =>
      a.run(
        'conv2d',
        [four, w9],
        conv.map((v, i) => (i === 17 ? 2 : v)),
        undefined,
      ),
    /groups 2 must divide/,
  );
  native(() => a.run('softmaxCrossEntropy', [four], [2, 2, 0], Int32Array.from([0, 5])), /label 5 at row 1/);
  native(() => a.run('softmaxCrossEntropy', [four], [2, 2, 0], undefined), /expected 2 labels/);
  native(() => a.run('sliceChannels', [four], [2, 2, 1, 2], undefined), /exceeds the channel count/);
  native(() => a.download(four, new Float32Array(3)), /handle has 4 elements, target has 3/);
  native(() => a.alloc(1e15, false), /out of range|out of native memory/);
  a.free(four);
  native(() => a.run('relu', [four], [4], undefined), /was disposed/);
  native(() => a.download(four, new Float32Array(4)), /was disposed/);
  native(() => a.free(four), /was disposed/);
  // Still alive and correct.
  const y = a.run('relu', [a.upload(f32([-1, 2]))], [2], undefined)[0] as never;
  const out = new Float32Array(2);
  a.download(y, out);
  assert.deepEqual(Array.from(out), [0, 2]);
});

nativeTest('freed memory stays resident for reuse by later tensors, and can be trimmed', (n) => {
  const size = 1 << 16; // 256 KiB: large enough for the arena
  const dirty = n.upload(new Float32Array(size).fill(7));
  n.trimPool();
  n.dispose(dirty);
  assert.ok(n.stats().pooledBytes >= size * 4, 'the freed block is kept');
  // The reused block must come back zeroed when zeros are asked for.
  const z = n.download(n.zeros(size, 'float32'), size, 'float32');
  assert.ok(z.every((v) => v === 0));
  n.trimPool();
  assert.equal(n.stats().pooledBytes, 0);
});

// A fresh process, so that the arena holds only what the scenario puts there. S = 256 KiB.
// a, b allocated; a freed; c (2 S) does not fit a's hole and goes on top: 3 S live (the peak),
// 4 S resident. The slack (setPoolLimit / XCEPTION_POOL_MB) says how far the resident size may
// exceed the peak; past it, free pages go back to the system.
const arenaScenario = (setLimit: string) => `
  const m = await import(${JSON.stringify(indexUrl)});
  const b = m.requireNativeBackend();
  ${setLimit}
  const S = 1 << 16, MB = 2 ** 20;
  const p = () => { const s = b.stats(); return { pooled: s.pooledBytes / MB, arena: s.arenaBytes / MB, peak: s.peakLiveBytes / MB }; };
  const x = b.zeros(S, 'float32'), y = b.zeros(S, 'float32');
  b.dispose(x);
  const c = b.zeros(2 * S, 'float32');
  const hole = p();
  b.dispose(y); b.dispose(c);
  const empty = p();
  const again = [b.zeros(2 * S, 'float32'), b.zeros(S, 'float32')];
  const reused = p();
  for (const t of again) b.dispose(t);
  b.trimPool();
  console.log(JSON.stringify({ hole, empty, reused, trimmed: p() }));`;

nativeTest('the arena keeps resident what the live peak needed plus at most its slack (setPoolLimit, XCEPTION_POOL_MB)', (n) => {
  type Point = { pooled: number; arena: number; peak: number };
  type Run = { hole: Point; empty: Point; reused: Point; trimmed: Point };
  // Slack 1 MiB: the 256 KiB hole stays resident; freeing everything keeps the whole peak.
  const wide = child(arenaScenario('b.setPoolLimit(2 ** 20);')) as Run;
  assert.deepEqual(wide.hole, { pooled: 0.25, arena: 1, peak: 0.75 });
  assert.deepEqual(wide.empty, { pooled: 1, arena: 1, peak: 0.75 });
  assert.deepEqual(wide.reused, { pooled: 0.25, arena: 1, peak: 0.75 }, 'the second round reuses the resident memory');
  assert.deepEqual(wide.trimmed, { pooled: 0, arena: 0, peak: 0 }, 'trimPool returns everything and forgets the peak');
  // Slack 0 through the environment: the hole beyond the peak goes back at once, the peak stays.
  const tight = child(arenaScenario(''), { XCEPTION_POOL_MB: '0' }) as Run;
  assert.deepEqual(tight.hole, { pooled: 0, arena: 0.75, peak: 0.75 });
  assert.equal(tight.empty.arena, 0.75, 'never more than the peak');
  assert.deepEqual(tight.trimmed, { pooled: 0, arena: 0, peak: 0 });
  // A bad value warns and keeps the default slack (1 GiB), so the hole stays.
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', arenaScenario('')], {
    encoding: 'utf8',
    env: { ...process.env, XCEPTION_POOL_MB: 'lots' },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /ignoring XCEPTION_POOL_MB=lots: it must be a whole number of MiB/);
  assert.equal((JSON.parse(r.stdout) as Run).hole.pooled, 0.25);
  // Bad limits through the API are errors; the current one is kept.
  const before = n.stats();
  assert.throws(() => n.setPoolLimit(-1), OptionError);
  assert.throws(() => n.setPoolLimit(1.5), OptionError);
  assert.equal(n.stats().pooledBytes, before.pooledBytes);
});

nativeTest('random allocations and frees: live blocks never overlap, and the arena stays within peak + slack', () => {
  // A fresh process with slack 0: the resident size may never exceed the live peak. Every block
  // is filled with its own value and checked when freed, so two live blocks sharing memory fail.
  const code = `
    const m = await import(${JSON.stringify(indexUrl)});
    const b = m.requireNativeBackend();
    b.setPoolLimit(0);
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const live = [];
    let worst = 0, checked = 0, mismatches = 0;
    for (let i = 0; i < 1500; i++) {
      if (live.length && (rand() < 0.45 || live.length > 40)) {
        const [t, value, size] = live.splice(Math.floor(rand() * live.length), 1)[0];
        const back = b.download(t, size, 'float32');
        if (back[0] !== value || back[size - 1] !== value || back[size >> 1] !== value) mismatches++;
        checked++;
        b.dispose(t);
      } else {
        const size = (1 << 14) + Math.floor(rand() * (1 << 20));  // 64 KiB to 4 MiB
        const value = i + 0.5;
        live.push([b.upload(new Float32Array(size).fill(value)), value, size]);
      }
      const s = b.stats();
      worst = Math.max(worst, s.arenaBytes - s.peakLiveBytes);
    }
    for (const [t] of live) b.dispose(t);
    console.log(JSON.stringify({ worst, checked, mismatches }));`;
  const r = child(code) as { worst: number; checked: number; mismatches: number };
  assert.ok(r.checked > 500, `${r.checked} blocks were checked`);
  assert.equal(r.mismatches, 0, 'every block kept its own values');
  assert.ok(r.worst <= 0, `resident size exceeded the live peak by ${r.worst} bytes`);
});

nativeTest('handles that are dropped without dispose are freed by the garbage collector', () => {
  const code = `
    const m = await import(${JSON.stringify(indexUrl)});
    const b = m.requireNativeBackend();
    const base = b.stats().buffers;
    (() => { for (let i = 0; i < 64; i++) b.zeros(1 << 20, 'float32'); })();
    const held = b.stats().buffers - base;
    for (let i = 0; i < 10 && b.stats().buffers > base; i++) {
      globalThis.gc();
      await new Promise((r) => setImmediate(r));
    }
    console.log(JSON.stringify({ held, left: b.stats().buffers - base }));`;
  const r = child(code, {}, ['--expose-gc']) as { held: number; left: number };
  assert.ok(r.held > 0, 'the tensors existed');
  assert.equal(r.left, 0, 'all dropped tensors were finalized');
});

nativeTest('tensors that are disposed trigger no garbage collections; dropped ones are still collected', () => {
  // V8 hears only of new highs of the live native bytes: a loop whose tensors rise and fall by
  // 256 MiB each step must not start a major collection per step (it did: 102 in 100 steps,
  // and their background marking slowed the kernels), while 6 GiB of dropped handles must still
  // be collected without an explicit gc().
  const code = `
    const { PerformanceObserver, constants } = await import('node:perf_hooks');
    const m = await import(${JSON.stringify(indexUrl)});
    const b = m.requireNativeBackend();
    let major = 0;
    const obs = new PerformanceObserver((l) => {
      for (const e of l.getEntries()) if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) major++;
    });
    obs.observe({ entryTypes: ['gc'] });
    const tick = () => new Promise((r) => setImmediate(r));
    const step = () => {
      const ts = [];
      for (let i = 0; i < 8; i++) ts.push(b.zeros(8 << 20, 'float32'));
      for (const t of ts) b.dispose(t);
    };
    step();
    await tick();
    const before = major;
    for (let s = 0; s < 100; s++) { step(); await tick(); }
    const disposing = major - before;
    let worst = 0;
    for (let i = 0; i < 192; i++) {
      b.zeros(8 << 20, 'float32');
      await tick();
      worst = Math.max(worst, b.stats().bytes);
    }
    obs.disconnect();
    console.log(JSON.stringify({ disposing, worstMiB: worst / 2 ** 20 }));`;
  const r = child(code) as { disposing: number; worstMiB: number };
  assert.ok(r.disposing <= 5, `${r.disposing} major collections in 100 steps that dispose everything`);
  assert.ok(r.worstMiB < 1024, `dropped tensors piled up to ${r.worstMiB} MiB`);
});

nativeTest('worker threads each get their own native state and compute the same results', async () => {
  // Each worker loads the addon into its own Node environment (own oneDNN stream and cache).
  const code = `
    const { parentPort } = require('node:worker_threads');
    import(${JSON.stringify(indexUrl)}).then((m) => {
      const b = m.requireNativeBackend();
      const p = { batch: 1, inHeight: 6, inWidth: 6, inChannels: 8, outHeight: 6, outWidth: 6, outChannels: 8,
        kernelHeight: 3, kernelWidth: 3, strideHeight: 1, strideWidth: 1, dilationHeight: 1, dilationWidth: 1,
        padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, groups: 1 };
      const x = b.upload(Float32Array.from({ length: 288 }, (_, i) => (i % 7) - 3));
      const w = b.upload(Float32Array.from({ length: 576 }, (_, i) => ((i % 5) - 2) / 4));
      let sum = 0;
      for (let i = 0; i < 20; i++) { const y = b.conv2d(x, w, p); sum += b.download(y, 288, 'float32').reduce((a, v) => a + v, 0); b.dispose(y); }
      parentPort.postMessage(sum);
    });`;
  const { Worker } = await import('node:worker_threads');
  const sums = await Promise.all(
    [0, 1, 2].map(
      () =>
        new Promise<number>((resolve, reject) => {
          const w = new Worker(code, { eval: true });
          w.once('message', (v: number) => {
            resolve(v);
            void w.terminate();
          });
          w.once('error', reject);
        }),
    ),
  );
  assert.equal(new Set(sums).size, 1, `workers disagree: ${sums.join(', ')}`);
  assert.ok(Number.isFinite(sums[0]!) && sums[0] !== 0);
});
