/**
 * What only the wasm backend has: its memory (a limit that is a typed error, blocks reused after
 * dispose), its checks before any kernel runs (hostile parameters), its loaders, and a browser-safe
 * import graph.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { referenceBackend as R } from '../../src/backends/reference/index.js';
import { createWasmBackend, instantiateWasmBackend, WasmBackend } from '../../src/backends/wasm/index.js';
import {
  nodeWorkerSpawner,
  WASM_MODULE_PATH,
  WASM_THREADED_MODULE_PATH,
  wasmBackendStatus,
  wasmMemoryLimitFromEnv,
  wasmThreadsFromEnv,
} from '../../src/backends/wasm/node.js';
import { BackendError, DisposedError, OptionError, OutOfMemoryError, ShapeError, XceptionError } from '../../src/core/errors.js';
import { Random } from '../../src/core/random.js';
import { convParams, poolParams } from '../helpers/params.js';

const status = wasmBackendStatus();

// Node 20 can deadlock at exit (nodejs/node#54918; seen three times on this file, each under load):
// the main thread drains background tasks while a concurrent TurboFan job waits for a garbage
// collection only the main thread can run. An idle event loop does run it, so the file stays in
// its loop a moment after the last test, for jobs still queued to finish.
after(() => new Promise<void>((resolve) => setTimeout(resolve, 300)));
const MiB = 2 ** 20;

function wasmTest(name: string, body: (module: WebAssembly.Module) => void | Promise<void>): void {
  test(name, async (t) => {
    if (!status.available) return t.skip(status.reason);
    await body(new WebAssembly.Module(readFileSync(WASM_MODULE_PATH)));
  });
}

wasmTest('growing past the memory limit is an OutOfMemoryError, and the backend keeps working', (module) => {
  const b = createWasmBackend(module, { memoryLimitBytes: 64 * MiB });
  assert.throws(() => b.zeros(20 * MiB, 'float32'), OutOfMemoryError);
  assert.throws(() => b.upload(new Float32Array(17 * MiB)), /past the wasm memory limit of 64\.0 MiB/);
  const x = b.upload(Float32Array.from([1, -2, 3]));
  assert.deepEqual(Array.from(b.download(b.relu(x, 3), 3, 'float32')), [1, 0, 3]);
  // A kernel with several outputs that runs out part-way frees the outputs it had made: memory is
  // filled so that batch norm's y (as large as x) fits exactly and its mean does not.
  const gamma = b.upload(new Float32Array(2).fill(1));
  const rows = MiB / 8;
  const input = b.zeros(rows * 2, 'float32');
  const filler = b.zeros((64 * MiB - b.heap.stats().topBytes - rows * 8) / 4, 'float32');
  const live = b.heap.stats().liveBytes;
  assert.throws(() => b.batchNormTrain(input, gamma, gamma, { rows, channels: 2, epsilon: 1e-3 }), OutOfMemoryError);
  assert.equal(b.heap.stats().liveBytes, live);
  b.dispose(filler);
  assert.equal(b.download(b.batchNormTrain(input, gamma, gamma, { rows, channels: 2, epsilon: 1e-3 }).mean, 2, 'float32')[0], 0);
  // The default limit is wasm32's 4 GiB: a bigger request is refused before memory grows.
  const full = createWasmBackend(module);
  assert.throws(() => full.zeros(2 ** 30 + 1, 'float32'), OutOfMemoryError);
  assert.ok(full.heap.stats().memoryBytes < 64 * MiB);
});

wasmTest('disposed blocks are reused: a steady loop of allocations does not grow memory', (module) => {
  const b = createWasmBackend(module, { memoryLimitBytes: 48 * MiB });
  const sizes = [MiB, 3 * MiB, MiB / 2, 2 * MiB];
  for (let i = 0; i < 200; i++) {
    const hs = sizes.map((s) => b.zeros(s, 'float32'));
    for (const h of hs.reverse()) b.dispose(h);
  }
  const { liveBytes, memoryBytes } = b.heap.stats();
  assert.ok(memoryBytes <= 48 * MiB, `memory ${memoryBytes}`);
  assert.ok(liveBytes < MiB, `live ${liveBytes} after everything was disposed (only the GEMM space remains)`);
});

wasmTest('bad handles and parameters are typed errors before any kernel runs', (module) => {
  const b = createWasmBackend(module);
  assert.deepEqual(b.dtypes, ['float32']);
  assert.throws(() => b.upload(new Float64Array(3)), BackendError);
  assert.throws(() => b.zeros(3, 'float64'), BackendError);
  const x = b.upload(new Float32Array(4));
  assert.throws(() => b.relu(R.upload(new Float32Array(4)), 4), /not a handle of the wasm backend/);
  assert.throws(() => b.relu(x, 5), ShapeError);
  assert.throws(() => b.scale(x, Number.NaN, 4), OptionError);
  const p = convParams({ height: 2, width: 2, inChannels: 1, outChannels: 1, kernel: [1, 1], padding: 'valid' });
  assert.throws(() => b.conv2d(x, b.upload(new Float32Array(1)), { ...p, outHeight: 3 }), ShapeError);
  assert.throws(() => b.conv2d(x, b.upload(new Float32Array(1)), { ...p, groups: 0 }), ShapeError);
  assert.throws(() => b.softmaxCrossEntropy(x, Int32Array.from([7]), { rows: 1, channels: 4, labelSmoothing: 0 }), ShapeError);
  b.dispose(x);
  b.dispose(x); // twice is harmless
  assert.throws(() => b.relu(x, 4), DisposedError);
});

wasmTest('the asynchronous loader (the browser path) gives a working backend from bytes', async () => {
  const b = await instantiateWasmBackend(readFileSync(WASM_MODULE_PATH));
  assert.ok(b instanceof WasmBackend);
  const a = b.upload(Float32Array.from([1, 2, 3, 4, 5, 6]));
  const m = b.matmul(a, a, { m: 2, k: 3, n: 2, transA: false, transB: true });
  assert.deepEqual(Array.from(b.download(m, 4, 'float32')), [14, 32, 32, 77]);
});

test('XCEPTION_WASM_MEMORY_MB: whole MiB up to 4096, anything else an OptionError', () => {
  assert.equal(wasmMemoryLimitFromEnv(undefined), 2 ** 32);
  assert.equal(wasmMemoryLimitFromEnv('512'), 512 * MiB);
  for (const bad of ['0', '4097', '1.5', 'lots', '-3']) assert.throws(() => wasmMemoryLimitFromEnv(bad), OptionError, bad);
});

test('the wasm backend imports no Node built-in outside its Node loader (it runs in the browser)', () => {
  const here = dirname(fileURLToPath(import.meta.url));
  const start = join(here, '../../src/backends/wasm/index.js');
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const [, spec] of text.matchAll(/(?:import|export)(?:[^'"]*from)?\s*'([^']+)'/g)) {
      assert.ok(spec!.startsWith('.'), `${file} imports '${spec}'`);
      visit(join(dirname(file), spec!));
    }
  };
  visit(start);
  assert.ok(seen.size >= 4, `walked ${[...seen].join(', ')}`);
  assert.ok(![...seen].some((f) => f.endsWith('node.js')));
});

/** Edits one field of valid params to a hostile value: negative, zero, huge, fractional, NaN. */
function hostile<T extends object>(rng: Random, p: T): T {
  const keys = Object.keys(p) as (keyof T)[];
  const key = keys[rng.int(keys.length)]!;
  const values = [-1, 0, 1, 2, 3, 7, 2 ** 31, 2 ** 20, 1e9, 2.5, Number.NaN, Number.POSITIVE_INFINITY];
  return { ...p, [key]: values[rng.int(values.length)] };
}

wasmTest('hostile kernel parameters are typed errors or correct runs, never a trap or a leak', (module) => {
  const b = createWasmBackend(module, { memoryLimitBytes: 256 * MiB });
  const rng = new Random(17);
  const conv = convParams({
    batch: 2,
    height: 6,
    width: 5,
    inChannels: 4,
    outChannels: 6,
    kernel: [3, 3],
    stride: [2, 1],
    padding: 'same',
    groups: 2,
  });
  const pool = poolParams({ batch: 2, height: 6, width: 5, channels: 3, window: [3, 3], stride: [2, 2], padding: 'same' });
  const baseline = b.heap.stats().liveBytes;
  let ran = 0;
  for (let i = 0; i < 400; i++) {
    const p = hostile(rng, conv);
    const q = hostile(rng, pool);
    const sized = (n: number) => b.zeros(Number.isSafeInteger(n) && n >= 0 && n < 2 ** 22 ? n : 1, 'float32');
    const x = sized(p.batch * p.inHeight * p.inWidth * p.inChannels);
    const w = sized(p.kernelHeight * p.kernelWidth * (p.inChannels / p.groups) * p.outChannels);
    const px = sized(q.batch * q.inHeight * q.inWidth * q.channels);
    for (const call of [
      () => b.conv2d(x, w, p),
      () => b.conv2dBackwardFilter(x, x, p),
      () => b.maxPool2d(px, q),
      () => b.avgPool2d(px, q),
    ]) {
      try {
        b.dispose(call());
        ran++;
      } catch (e) {
        assert.ok(e instanceof XceptionError, `case ${i}: ${String(e)}`);
      }
    }
    for (const h of [x, w, px]) b.dispose(h);
  }
  assert.ok(ran > 0);
  assert.equal(b.heap.stats().liveBytes, baseline);
});

// ---- threads ---------------------------------------------------------------------------------

const threaded = existsSync(WASM_THREADED_MODULE_PATH);

function threadedTest(name: string, body: (module: WebAssembly.Module) => void | Promise<void>): void {
  test(name, async (t) => {
    if (!threaded) return t.skip(`${WASM_THREADED_MODULE_PATH} is not built`);
    await body(new WebAssembly.Module(readFileSync(WASM_THREADED_MODULE_PATH)));
  });
}

threadedTest('with 2 threads, growing past the memory limit is still an OutOfMemoryError, and the workers keep working', async (module) => {
  const b = createWasmBackend(module, { memoryLimitBytes: 64 * MiB, threads: 2, spawn: nodeWorkerSpawner });
  await b.threadsReady();
  assert.equal(b.threads(), 2);
  assert.throws(() => b.zeros(20 * MiB, 'float32'), OutOfMemoryError);
  // Memory grown after the workers started is theirs too (one shared memory): a GEMM whose
  // operands lie past the size the workers were instantiated at.
  const big = b.zeros(8 * MiB, 'float32');
  assert.ok(b.heap.stats().memoryBytes > 32 * MiB);
  const a = b.upload(Float32Array.from({ length: 256 * 64 }, (_, i) => (i % 7) - 3));
  const w = b.upload(Float32Array.from({ length: 64 * 256 }, (_, i) => (i % 5) - 2));
  const p = { m: 256, k: 64, n: 256, transA: false, transB: false };
  const two = b.download(b.matmul(a, w, p), 256 * 256, 'float32');
  b.setThreads(1);
  assert.deepEqual(two, b.download(b.matmul(a, w, p), 256 * 256, 'float32'));
  b.dispose(big);
  b.stopThreads();
  b.stopThreads(); // twice is harmless
  assert.equal(b.threads(), 1);
  assert.throws(() => b.setThreads(2), BackendError);
  assert.deepEqual(Array.from(b.download(b.relu(b.upload(Float32Array.from([-3, 2])), 2), 2, 'float32')), [0, 2], 'one thread still runs');
});

threadedTest('a job that traps in a worker is an error for its caller, not a hang; jobs then run on one thread', async (module) => {
  const b = createWasmBackend(module, { memoryLimitBytes: 64 * MiB, threads: 2, spawn: nodeWorkerSpawner });
  await b.threadsReady();
  b.setParallelMinWork(0);
  const { kernels: k, work, offsetOf } = b.planAccess();
  const a = offsetOf('test', b.upload(new Float32Array(64 * 8).fill(1)), 64 * 8);
  // A GEMM split by rows whose second half (the worker's) lies past the end of memory.
  const c = k.memory.buffer.byteLength - 32 * 8 * 4;
  assert.throws(() => k.gemm(0, 0, 64, 8, 8, a, 8, a, 8, c, 8, 0, work), WebAssembly.RuntimeError);
  const x = Float32Array.from({ length: 1 << 18 }, (_, i) => (i % 5) - 2);
  const y = b.download(b.relu(b.upload(x), x.length), x.length, 'float32');
  assert.deepEqual(Array.from(y.slice(0, 5)), [0, 0, 0, 1, 2], 'later kernels run, on the caller alone');
  b.stopThreads();
});

threadedTest('setThreads takes 1 to 16; the single-thread module or a missing spawner refuse more than 1', (module) => {
  const b = createWasmBackend(module);
  assert.equal(b.threads(), 1);
  b.setThreads(1);
  assert.throws(() => b.setThreads(2), BackendError);
  const single = createWasmBackend(new WebAssembly.Module(readFileSync(WASM_MODULE_PATH)));
  assert.throws(() => single.setThreads(4), /xception-mt\.wasm/);
  const pooled = createWasmBackend(module, { spawn: nodeWorkerSpawner });
  for (const bad of [0, 17, 1.5, Number.NaN]) assert.throws(() => pooled.setThreads(bad), OptionError, String(bad));
  pooled.stopThreads();
});

test('XCEPTION_WASM_THREADS: 1 to 16, default min(cores, 4), anything else an OptionError', () => {
  assert.equal(wasmThreadsFromEnv('3'), 3);
  assert.equal(wasmThreadsFromEnv(undefined), Math.min(availableParallelism(), 4));
  for (const bad of ['0', '17', '2.5', 'many', '-1']) assert.throws(() => wasmThreadsFromEnv(bad), OptionError, bad);
});

threadedTest('V8 flags on the command line (node --no-liftoff) still give the threaded backend', () => {
  const script = `
    import { loadWasmBackend, wasmBackendStatus } from ${JSON.stringify(new URL('../../src/backends/wasm/node.js', import.meta.url).href)};
    const b = loadWasmBackend();
    console.log(b ? b.threads() : wasmBackendStatus().reason);`;
  const out = execFileSync(process.execPath, ['--no-liftoff', '--input-type=module', '-e', script], {
    env: { ...process.env, XCEPTION_WASM_THREADS: '2' },
    timeout: 30_000,
    encoding: 'utf8',
  });
  assert.equal(out.trim(), '2');
});

threadedTest('a process using the threaded backend exits by itself: the workers never keep it alive', () => {
  const script = `
    import { loadWasmBackend } from ${JSON.stringify(new URL('../../src/backends/wasm/node.js', import.meta.url).href)};
    const b = loadWasmBackend();
    const x = b.upload(new Float32Array(1 << 20).fill(-1));
    b.setParallelMinWork(0);
    b.relu(x, 1 << 20);
    console.log(b.threads());`;
  const started = Date.now();
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, XCEPTION_WASM_THREADS: '2' },
    timeout: 30_000,
    encoding: 'utf8',
  });
  assert.equal(out.trim(), '2');
  assert.ok(Date.now() - started < 30_000);
});
