/**
 * The two builds of the wasm kernels: relaxed SIMD (wasm/xception*-relaxed.wasm, fused
 * multiply-adds), which the default backend loads where it can and so the shared suites check,
 * and plain SIMD128 (XCEPTION_WASM_SIMD=plain), on which a child runs the shared kernel and
 * gradient suites again. Also the choice between them: XCEPTION_WASM_SIMD, the probe, and Node
 * 20's V8 flag, which the loader turns on only when it wants relaxed SIMD.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createWasmBackend } from '../../src/backends/wasm/index.js';
import { parseWasmSimd, relaxedSimdSupported, wantsRelaxed } from '../../src/backends/wasm/simd.js';
import { enableRelaxedSimd, wasmModulePath, wasmRelaxedFromEnv } from '../../src/backends/wasm/node.js';
import { OptionError } from '../../src/core/errors.js';

const RELAXED_FLAG = '--experimental-wasm-relaxed-simd';
const built = [false, true].every((threaded) => existsSync(wasmModulePath(threaded, true)));
const skip = built ? false : 'the relaxed-SIMD modules are not built (wasm/build.sh needs clang-19)';
const suites = ['backend-kernels.test.js', 'backend-gradients.test.js'].map((f) => fileURLToPath(new URL(f, import.meta.url)));

/** Node with relaxed SIMD: this one where it has it, else this one with the V8 flag. */
const relaxedNodeArgs = (): string[] => (relaxedSimdSupported() ? [] : [RELAXED_FLAG]);

test('the shared kernel and gradient suites pass on the plain SIMD128 builds too (1 thread and 2)', { skip }, () => {
  // A test runner of its own (not a child of this one's: NODE_TEST_CONTEXT would say so).
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', ...suites], {
    encoding: 'utf8',
    env: { ...env, XCEPTION_WASM_SIMD: 'plain' },
    timeout: 600_000,
  });
  const out = `${r.stdout}\n${r.stderr}`;
  assert.equal(r.status, 0, `the suites failed on the plain builds:\n${out.slice(-4000)}`);
  // Both wasm entries (the default backend and the thread-checked one) ran, none skipped.
  assert.match(out, /^ok \d+ - wasm: /m);
  assert.match(out, /^ok \d+ - wasm×2: /m);
  assert.doesNotMatch(out, /^ok \d+ - wasm(×2)?: .*# SKIP/m);
});

test("the default backend loads the relaxed build (Node 20: turning V8's flag on); XCEPTION_WASM_SIMD=plain leaves the flags alone", {
  skip,
}, () => {
  const node = JSON.stringify(new URL('../../src/backends/wasm/node.js', import.meta.url).href);
  const simd = JSON.stringify(new URL('../../src/backends/wasm/simd.js', import.meta.url).href);
  const code = `
    import { loadWasmBackend } from ${node};
    import { relaxedSimdSupported } from ${simd};
    const before = relaxedSimdSupported();
    const b = loadWasmBackend();
    console.log(JSON.stringify({ before, simd: b.simd(), after: relaxedSimdSupported() }));`;
  const run = (choice: string) => {
    const { NODE_TEST_CONTEXT: _, ...env } = process.env;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
      encoding: 'utf8',
      env: { ...env, XCEPTION_WASM_SIMD: choice },
    });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as { before: boolean; simd: string; after: boolean };
  };
  const auto = run('');
  assert.equal(auto.simd, 'relaxed');
  assert.equal(auto.after, true);
  const plain = run('plain');
  assert.equal(plain.simd, 'plain');
  assert.equal(plain.after, plain.before, 'plain turned a V8 flag on');
});

test('the relaxed module says so, runs fused multiply-adds, and agrees with the plain one within float32 rounding', { skip }, () => {
  const code = `
    import { readFileSync } from 'node:fs';
    import { createWasmBackend } from ${JSON.stringify(new URL('../../src/backends/wasm/index.js', import.meta.url).href)};
    const load = (path) => createWasmBackend(new WebAssembly.Module(readFileSync(path)));
    const [plain, relaxed] = [${JSON.stringify(wasmModulePath(false, false))}, ${JSON.stringify(wasmModulePath(false, true))}].map(load);
    // Σ_k a[k]·w[k] = 1·-(1 + 2^-22) + (1 + 2^-23)·(1 + 2^-23), whose exact value is 2^-46: a
    // fused multiply-add keeps it (one rounding), a multiply then an add loses it (1 + 2^-22 first).
    const [m, n, k] = [1, 4, 2];
    const run = (b) => {
      const a = b.upload(Float32Array.from([1, 1 + 2 ** -23]));
      const w = b.upload(Float32Array.from([...Array(n).fill(-(1 + 2 ** -22)), ...Array(n).fill(1 + 2 ** -23)]));
      return Array.from(b.download(b.matmul(a, w, { m, n, k, transA: false, transB: false }), m * n, 'float32'));
    };
    console.log(JSON.stringify({ simd: [plain.simd(), relaxed.simd()], plain: run(plain), relaxed: run(relaxed) }));
  `;
  const r = spawnSync(process.execPath, [...relaxedNodeArgs(), '--input-type=module', '-e', code], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const got = JSON.parse(r.stdout) as { simd: string[]; plain: number[]; relaxed: number[] };
  assert.deepEqual(got.simd, ['plain', 'relaxed']);
  assert.deepEqual(got.plain, [0, 0, 0, 0]);
  // Fused on this x86 CPU (FMA): the 2^-46 survives. (Relaxed SIMD lets an engine without FMA
  // round twice, which would give 0 like the plain build.)
  for (const v of got.relaxed) assert.ok(v === 2 ** -46 || v === 0, `relaxed gives ${v}`);
  assert.ok(
    got.relaxed.some((v) => v === 2 ** -46),
    'no fused multiply-add seen in the relaxed build',
  );
});

test('XCEPTION_WASM_SIMD: auto takes relaxed only where the engine has it and the module is built; bad values are OptionErrors', () => {
  assert.equal(parseWasmSimd(undefined, 'X'), 'auto');
  assert.equal(parseWasmSimd('', 'X'), 'auto');
  assert.equal(parseWasmSimd('plain', 'X'), 'plain');
  assert.throws(
    () => parseWasmSimd('fast', 'XCEPTION_WASM_SIMD'),
    (e: unknown) => e instanceof OptionError && /auto, relaxed, plain/.test(e.message),
  );
  assert.equal(wantsRelaxed('auto', true, true), true);
  assert.equal(wantsRelaxed('auto', false, true), false);
  assert.equal(wantsRelaxed('auto', true, false), false);
  assert.equal(wantsRelaxed('plain', true, true), false);
  assert.equal(wantsRelaxed('relaxed', true, true), true);
  assert.throws(() => wantsRelaxed('relaxed', false, true), /this engine has none/);
  assert.throws(() => wantsRelaxed('relaxed', true, false), /clang-19/);
  // This process: the default follows the engine.
  assert.equal(wasmRelaxedFromEnv(undefined), relaxedSimdSupported() && built);
  assert.equal(wasmRelaxedFromEnv('plain'), false);
});

test('the relaxed-SIMD probe validates exactly where relaxed modules compile', { skip }, () => {
  const compiles = () => {
    try {
      createWasmBackend(new WebAssembly.Module(readFileSync(wasmModulePath(false, true))));
      return true;
    } catch {
      return false;
    }
  };
  assert.equal(relaxedSimdSupported(), compiles());
  assert.equal(enableRelaxedSimd(), true, 'this Node cannot turn relaxed SIMD on');
  assert.equal(relaxedSimdSupported(), true);
  assert.equal(compiles(), true);
});
