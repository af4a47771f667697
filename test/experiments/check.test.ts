import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setBackend } from '../../src/index.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { loadWasmBackend } from '../../src/backends/wasm/node.js';
import { main } from '../../src/cli/main.js';
import { checkCommitted, judgeCheck } from '../../src/experiments/check.js';
import { commitOf, cpuInfo, currentProvenance, provenanceText } from '../../src/experiments/provenance.js';
import { getRecipe } from '../../src/experiments/recipes.js';
import { provenanceSummary } from '../../src/experiments/report.js';
import { readResults, runDir, runExperiment, type RunResult } from '../../src/experiments/runner.js';
import { Progress } from '../../src/train/progress.js';
import { makeTempDir, writeIdxDataset } from '../data/fixtures.js';

setBackend(referenceBackend);

/** A committed run of the residual recipe, as far as the check reads it. */
function run(variant: string, seed: number, finalTop1: number): RunResult {
  return { variant, seed, finalTop1, points: [{ evalTop1: finalTop1 }] } as unknown as RunResult;
}

const recipe = getRecipe('residual');
const committed = [...[0.88, 0.89, 0.9].map((x, k) => run('residual', k, x)), ...[0.7, 0.72, 0.74].map((x, k) => run('no-residual', k, x))];

test('check: re-runs inside the committed spread with the same verdict hold', () => {
  const c = judgeCheck('residual', recipe.claim, recipe.variants, committed, [run('residual', 0, 0.885), run('no-residual', 0, 0.71)]);
  assert.equal(c.committedVerdict, 'agrees');
  assert.equal(c.recheckedVerdict, 'agrees');
  assert.ok(c.runs.every((r) => r.inside));
  assert.equal(c.holds, true);
  assert.match(c.text, /^residual: the verdict holds — committed 'agrees', with the re-runs 'agrees'; 2 of 2 re-runs inside/);
  assert.equal(c.runs[0]!.committed, 0.88);
});

test('check: a re-run outside the committed spread, or a changed verdict, does not hold', () => {
  const outside = judgeCheck('residual', recipe.claim, recipe.variants, committed, [run('residual', 0, 0.7), run('no-residual', 0, 0.71)]);
  assert.equal(outside.holds, false);
  assert.deepEqual(
    outside.runs.map((r) => r.inside),
    [false, true],
  );
  assert.match(outside.text, /does not hold.*residual seed 0: 70\.00 \(committed 88\.00; expected .*\) OUTSIDE/);
  // Inside each spread, yet the verdict flips: the claim's convergence part hinges on the replaced seed.
  const close = [...[0.9, 0.91, 0.92].map((x, k) => run('residual', k, x)), ...[0.85, 0.86, 0.87].map((x, k) => run('no-residual', k, x))];
  const flipped = judgeCheck('residual', recipe.claim, recipe.variants, close, [run('residual', 0, 0.87)]);
  assert.ok(flipped.runs[0]!.inside);
  assert.equal(flipped.committedVerdict, 'agrees');
  assert.equal(flipped.recheckedVerdict, 'inconclusive');
  assert.equal(flipped.holds, false);
  assert.throws(() => judgeCheck('residual', recipe.claim, recipe.variants, committed, []), /nothing was re-run/);
});

test('provenance: a run writing results/ leaves the commit clean; a code change makes it dirty', () => {
  const { dir: repo, cleanup } = makeTempDir('provenance');
  const git = (...args: string[]) =>
    execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: repo, stdio: 'pipe' });
  git('init', '-q');
  mkdirSync(join(repo, 'src'));
  mkdirSync(join(repo, 'results'));
  writeFileSync(join(repo, 'src', 'a.ts'), 'export const a = 1;\n');
  writeFileSync(join(repo, 'results', 'experiment.json'), '{}\n');
  git('add', '.');
  git('commit', '-q', '-m', 'c');
  const head = git('rev-parse', 'HEAD').toString().trim();
  writeFileSync(join(repo, 'results', 'experiment.json'), '{"runs": 1}\n');
  assert.equal(commitOf(repo), head);
  writeFileSync(join(repo, 'src', 'a.ts'), 'export const a = 2;\n');
  assert.equal(commitOf(repo), `${head}-dirty`);
  cleanup();
});

test('provenance: commit, backend, CPU model and flags, node, date', () => {
  const p = currentProvenance();
  assert.match(p.commit, /^([0-9a-f]{40}(-dirty)?|v\d+\.\d+\.\d+.*)$/);
  assert.equal(p.backend, 'reference');
  assert.equal(p.node, process.version);
  assert.ok(p.cpuModel.length > 0 && p.cpuCount >= 1);
  assert.ok(!Number.isNaN(Date.parse(p.date)));
  for (const key of [
    'commit',
    'backend',
    'onednn',
    'threads',
    'onednnMaxIsa',
    'cpuModel',
    'cpuFlags',
    'cpuCount',
    'node',
    'platform',
    'date',
  ])
    assert.ok(key in p, key);
  const cpu = cpuInfo('processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse4_2 avx2 fma avx512f avx512_vnni amx_tile lm\n');
  assert.deepEqual(cpu, { model: 'Test CPU 9000', flags: ['amx_tile', 'avx2', 'avx512_vnni', 'avx512f', 'fma', 'sse4_2'] });
  assert.match(
    provenanceText({ ...p, cpuModel: 'Test CPU', cpuFlags: ['avx2'] }),
    /^commit \S+.*, backend reference \(.*threads\), Test CPU \[avx2\] × \d+, node v/,
  );
  // The wasm backend records its build: relaxed SIMD rounds differently from plain.
  assert.equal(p.wasmSimd, null);
  assert.match(provenanceText({ ...p, backend: 'wasm', threads: '2', wasmSimd: 'relaxed' }), /backend wasm \(relaxed SIMD, 2 threads\)/);
  const wasm = loadWasmBackend();
  if (wasm) {
    setBackend(wasm);
    try {
      assert.equal(currentProvenance().wasmSimd, wasm.simd());
    } finally {
      setBackend(referenceBackend);
    }
  }
});

test('experiment run --check: a tiny committed result re-checked on this machine (holds; tampered, does not)', async () => {
  const tmp = makeTempDir('experiment-check');
  try {
    writeIdxDataset(join(tmp.dir, 'd8'), { trainCount: 32, testCount: 16, h: 8, w: 8 });
    const committedOut = join(tmp.dir, 'committed');
    const r = await runExperiment('residual', {
      outDir: committedOut,
      dataset: `mnist:${join(tmp.dir, 'd8')}`,
      seeds: 3,
      batchSize: 16,
      modelOverrides: { width: 1 / 16, middleBlocks: 1 },
      progress: new Progress(process.stderr, true),
      measureSpeed: false,
    });
    // Every run records where it came from, and the report says so.
    const results = readResults(r.dir);
    assert.ok(results.every((x) => x.provenance?.backend === 'reference' && x.provenance.cpuModel && x.provenance.commit));
    assert.match(provenanceSummary(results), /^6 runs: commit \S+.*backend reference/);
    let text = '';
    const args = ['experiment', 'run', '--check', r.dir, '--check-seeds', '1', '--out', join(tmp.dir, 'recheck'), '--backend', 'reference'];
    assert.equal(await main(args, (s) => (text += s)), 0, text);
    assert.match(text, /^residual: the verdict holds .* 2 of 2 re-runs inside/);
    const check = JSON.parse(readFileSync(join(tmp.dir, 'recheck', 'check', 'check.json'), 'utf8'));
    assert.equal(check.claims[0].holds, true);
    // Same build, same seed: the re-run repeats the committed digits.
    assert.equal(check.claims[0].runs[0].rerun, check.claims[0].runs[0].committed);
    // Tamper with the committed result: the residual runs now claim a tight 99% that this machine does not reproduce.
    for (const seed of [0, 1, 2]) {
      const file = join(runDir(r.dir, 'residual', seed), 'result.json');
      const res = JSON.parse(readFileSync(file, 'utf8'));
      writeFileSync(file, JSON.stringify({ ...res, finalTop1: 0.99 + seed * 0.001, finalMetric: 0.99 + seed * 0.001 }));
    }
    text = '';
    assert.equal(await main(args, (s) => (text += s)), 1, text);
    assert.match(text, /^residual: the verdict does not hold .*residual seed 0: .* OUTSIDE/);
    // Another committed result (other settings) into the same --out must not reuse these re-runs.
    const manifestFile = join(r.dir, 'experiment.json');
    const manifest = JSON.parse(readFileSync(manifestFile, 'utf8'));
    writeFileSync(manifestFile, JSON.stringify({ ...manifest, settings: { ...manifest.settings, batchSize: 8 } }));
    await assert.rejects(
      checkCommitted(r.dir, { outDir: join(tmp.dir, 'recheck'), seeds: 1, progress: new Progress(process.stderr, true) }),
      /holds re-runs of a result with other settings or variants; choose another --out/,
    );
    assert.equal(await main(['experiment', 'run', 'residual', '--check-seeds', '1'], () => {}), 2);
    assert.equal(await main(['experiment', 'run', 'residual', '--check', r.dir], () => {}), 2);
  } finally {
    tmp.cleanup();
  }
});
