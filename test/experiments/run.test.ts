import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setBackend } from '../../src/index.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { main } from '../../src/cli/main.js';
import { RECIPES, getRecipe, variantInfo } from '../../src/experiments/recipes.js';
import { readResults, runDir, runExperiment, type ExperimentRunOptions, type RunResult } from '../../src/experiments/runner.js';
import { type Verdict, writeReport } from '../../src/experiments/report.js';
import { readSpeed } from '../../src/experiments/speed.js';
import { Progress } from '../../src/train/progress.js';
import { cifarBatch, makeTempDir, writeIdxDataset } from '../data/fixtures.js';

setBackend(referenceBackend);
const quiet = new Progress(process.stderr, true);

/** Small enough for the reference backend; segments keeps its own widths (they carry the divisibility). */
const TINY_OVERRIDES: Record<string, Record<string, unknown>> = {
  'inception-vs-xception': { width: 1 / 16 },
  residual: { width: 1 / 16, middleBlocks: 1 },
  'intermediate-activation': { width: 1 / 16, middleBlocks: 1 },
  order: { width: 1 / 16, middleBlocks: 1 },
  segments: {},
  'residual-vgg': { width: 1 / 16 },
  'activation-depth': {},
};

/** Side of the tiny images: Inception V3's and SepVGG's small stems need at least 13 and 16. */
const side = (name: string) => (name === 'inception-vs-xception' || name === 'residual-vgg' ? 16 : 8);

/** jft-style trains multi-label on fashion-mosaic: it needs the multi-label work and a mosaic fixture, not these IDX files. */
const TINY_RECIPES = RECIPES.filter((r) => r.name !== 'jft-style');

function tinyOptions(root: string, name: string, over: Partial<ExperimentRunOptions> = {}): ExperimentRunOptions {
  const data = `d${side(name)}`;
  return {
    outDir: join(root, 'out'),
    dataset: `mnist:${join(root, data)}`,
    seeds: 2,
    batchSize: 16,
    modelOverrides: TINY_OVERRIDES[name]!,
    progress: quiet,
    speedRounds: 2,
    ...over,
  };
}

function writeData(root: string): void {
  writeIdxDataset(join(root, 'd8'), { trainCount: 32, testCount: 16, h: 8, w: 8 });
  writeIdxDataset(join(root, 'd16'), { trainCount: 32, testCount: 16, h: 16, w: 16 });
}

/**
 * The claim paragraph of the issue-18 claim kinds: every part's effect with its 95% interval, and
 * a decided verdict or the seeds a decision would need.
 */
function assertClaimParagraph(name: string, verdict: Verdict | null, md: string): void {
  assert.ok(verdict, `${name}: no verdict`);
  assert.ok(md.includes(verdict.paragraph), `${name}: the verdict paragraph is not in the report`);
  const effects = verdict.paragraph.match(/[+−]\d+\.\d\d points.{0,40}95% CI [+−]\d+\.\d\d to [+−]\d+\.\d\d points/g) ?? [];
  assert.equal(effects.length, 2, `${name}: two effects with their intervals in: ${verdict.paragraph}`);
  const decided = verdict.verdict === 'agrees' || verdict.verdict === 'does not agree';
  if (verdict.seedsNeeded === null) assert.ok(decided, `${name}: '${verdict.verdict}' without the seeds needed`);
  else assert.match(verdict.paragraph, /To decide: (about \d+ seeds per variant|no number of seeds)/, name);
}

test('a tiny run of every recipe (two seeds) produces a complete report', async () => {
  const tmp = makeTempDir('experiments');
  try {
    writeData(tmp.dir);
    for (const recipe of TINY_RECIPES) {
      const r = await runExperiment(recipe.name, tinyOptions(tmp.dir, recipe.name));
      assert.equal(r.interrupted, false);
      assert.equal(r.results.length, recipe.variants.length * 2);
      for (const res of r.results) {
        assert.ok(existsSync(join(runDir(r.dir, res.variant, res.seed), 'result.json')));
        assert.ok(res.finalTop1 >= 0 && res.finalTop1 <= 1);
        assert.ok(res.points.length >= 2, `${recipe.name}/${res.variant}: ${res.points.length} curve points`);
        assert.ok(res.stepsPerSec > 0 && res.steps === 2);
        const v = recipe.variants.find((x) => x.name === res.variant)!;
        assert.equal(res.modelOptions[recipe.varies === 'model' ? 'width' : recipe.varies] !== undefined, true);
        if (recipe.varies !== 'model') assert.deepEqual(res.modelOptions[recipe.varies], v.options[recipe.varies]);
        const shape: [number, number, number] = [side(recipe.name), side(recipe.name), 1];
        assert.equal(res.params, variantInfo({ ...v, options: res.modelOptions }, shape, 10).params);
      }
      // Training speed measured side by side after the runs: every variant, each round.
      const speed = readSpeed(r.dir);
      assert.ok(speed, `${recipe.name}: no speed.json`);
      assert.deepEqual(
        speed.variants.map((s) => s.variant),
        recipe.variants.map((v) => v.name),
      );
      for (const s of speed.variants) assert.ok(s.rounds.length === 2 && s.rounds.every((x) => x > 0) && s.stepsPerSec > 0);
      assert.deepEqual(speed.inputShape, [side(recipe.name), side(recipe.name), 1]);
      const rep = await writeReport(r.dir);
      const md = readFileSync(rep.markdownFile, 'utf8');
      const html = readFileSync(rep.htmlFile, 'utf8');
      if (recipe.claim.kind === 'sign-flip') assertClaimParagraph(recipe.name, rep.summaries[0]!.verdict, md);
      assert.match(md, /steps\/s measured side by side after training \(median of 2 interleaved rounds/);
      // The table's steps/s column shows the side-by-side figures.
      for (const s of speed.variants)
        assert.ok(md.includes(`| ${s.stepsPerSec.toFixed(2)} |`), `${recipe.name}: ${s.variant} speed not in the table`);
      for (const v of recipe.variants) {
        assert.ok(md.includes(`| ${v.label} |`), `${recipe.name}: no table row for ${v.name}`);
        assert.ok(html.includes(`<td>${v.label.replace(/"/g, '&quot;')}</td>`), `${recipe.name}: no HTML row for ${v.name}`);
      }
      assert.match(md, /\*\*Outcome vs the paper \((agrees|partly agrees|does not agree|inconclusive)\)\.\*\* The paper: /);
      // Seeds added after a first look are said to be (a sequential design); other recipes say nothing.
      if (recipe.seeding) {
        assert.ok(md.includes(`Seeds: ${recipe.seeding}`), `${recipe.name}: no seeding note`);
        assert.ok(html.includes(`Seeds: ${recipe.seeding.replace(/"/g, '&quot;')}`), `${recipe.name}: no HTML seeding note`);
      } else assert.doesNotMatch(md, /^Seeds: /m);
      if (Object.keys(TINY_OVERRIDES[recipe.name]!).length)
        assert.match(md, /model overrides/); // tiny networks are labelled as such
      else assert.doesNotMatch(md, /model overrides/);
      const svgs = readdirSync(join(r.dir, 'figures')).filter((f) => f.endsWith('.svg'));
      assert.equal(svgs.length, 4, `${recipe.name}: ${svgs.join(', ')}`);
      for (const f of svgs) {
        assert.ok(md.includes(`figures/${f}`));
        assert.ok(existsSync(join(r.dir, 'figures', f.replace(/\.svg$/, '.png'))), `${f} has no PNG`);
      }
      // Self-contained: the four charts inline, nothing loaded from elsewhere.
      assert.equal((html.match(/<svg /g) ?? []).length, 4);
      assert.doesNotMatch(html, /<img|<script|<link|src=/);
    }
    // One report over the whole folder: a section per experiment.
    const all = await writeReport(join(tmp.dir, 'out'));
    assert.equal(all.summaries.length, TINY_RECIPES.length);
    const html = readFileSync(all.htmlFile, 'utf8');
    assert.equal((html.match(/<svg /g) ?? []).length, 4 * TINY_RECIPES.length);
    for (const recipe of TINY_RECIPES) assert.ok(html.includes(`<h2>${recipe.name}</h2>`));
  } finally {
    tmp.cleanup();
  }
});

test('an interrupted experiment resumes: finished runs are skipped, the cut run continues, seeds can grow', async () => {
  const tmp = makeTempDir('experiment-resume');
  try {
    writeData(tmp.dir);
    // Each run has 2 steps; stop at the 3rd step overall: run 1 finished, run 2 cut after its first step.
    let steps = 0;
    const cut = await runExperiment('residual', tinyOptions(tmp.dir, 'residual', { shouldStop: () => ++steps === 3 }));
    assert.equal(cut.interrupted, true);
    assert.equal(cut.results.length, 1);
    const dir = cut.dir;
    const firstFile = join(runDir(dir, 'residual', 0), 'result.json');
    const firstBefore = readFileSync(firstFile, 'utf8');
    // A report of an unfinished experiment shows what there is and judges nothing yet.
    const partial = await writeReport(dir, { png: false });
    assert.equal(partial.summaries[0]!.finishedRuns, 1);
    assert.equal(partial.summaries[0]!.verdict, null);
    assert.match(readFileSync(partial.markdownFile, 'utf8'), /1 of 4 runs finished[\s\S]*not judged yet/);
    await assert.rejects(runExperiment('residual', tinyOptions(tmp.dir, 'residual')), /already holds this experiment; pass --resume/);
    await assert.rejects(
      runExperiment('residual', tinyOptions(tmp.dir, 'residual', { resume: true, batchSize: 8 })),
      /cannot resume .* with different settings/,
    );
    const resumed = await runExperiment('residual', tinyOptions(tmp.dir, 'residual', { resume: true }));
    assert.equal(resumed.interrupted, false);
    assert.equal(resumed.skipped, 1);
    assert.equal(resumed.trained, 3);
    assert.equal(readFileSync(firstFile, 'utf8'), firstBefore, 'a finished run must not be redone');
    // The cut run continued from its checkpoint: its points are at steps 1 and 2, as an uncut run's.
    const second = resumed.results.find((r) => r.variant === 'no-residual' && r.seed === 0)!;
    assert.deepEqual(
      second.points.map((p) => p.step),
      [1, 2],
    );
    const again = await runExperiment('residual', tinyOptions(tmp.dir, 'residual', { resume: true }));
    assert.equal(again.skipped, 4);
    assert.equal(again.trained, 0);
    const more = await runExperiment('residual', tinyOptions(tmp.dir, 'residual', { resume: true, seeds: 3 }));
    assert.equal(more.skipped, 4);
    assert.equal(more.trained, 2);
    const all: RunResult[] = readResults(dir);
    assert.deepEqual(all.map((r) => `${r.variant}/${r.seed}`).sort(), [
      'no-residual/0',
      'no-residual/1',
      'no-residual/2',
      'residual/0',
      'residual/1',
      'residual/2',
    ]);
    // Seeds give different initializations.
    const a = all.find((r) => r.variant === 'residual' && r.seed === 0)!,
      b = all.find((r) => r.variant === 'residual' && r.seed === 1)!;
    assert.notDeepEqual(
      a.points.map((p) => p.evalLoss),
      b.points.map((p) => p.evalLoss),
    );
  } finally {
    tmp.cleanup();
  }
});

test('xception experiment run and report from the command line', async () => {
  const tmp = makeTempDir('experiment-cli');
  try {
    writeData(tmp.dir);
    const out = join(tmp.dir, 'out');
    let text = '';
    const code = await main(
      [
        'experiment',
        'run',
        'order',
        '--dataset',
        `mnist:${join(tmp.dir, 'd8')}`,
        '--seeds',
        '2',
        '--batch-size',
        '16',
        '--override',
        'width=0.0625',
        '--override',
        'middleBlocks=1',
        '--out',
        out,
        '--backend',
        'reference',
      ],
      (s) => (text += s),
    );
    assert.equal(code, 0, text);
    assert.match(text, /order: 4 run\(s\) trained, 0 finished earlier/);
    assert.ok(existsSync(join(out, 'order', 'report.html')));
    const res = readResults(join(out, 'order'));
    assert.equal(res.length, 4);
    assert.equal(res[0]!.modelOptions['middleBlocks'], 1);
    text = '';
    assert.equal(await main(['experiment', 'report', out, '--no-png'], (s) => (text += s)), 0);
    assert.match(text, /order: 4\/4 runs; (agrees|partly agrees|does not agree|inconclusive) with the paper/);
    assert.ok(existsSync(join(out, 'report.md')));
    assert.equal(await main(['experiment', 'report', join(tmp.dir, 'nothing-here')], () => {}), 2);
    assert.equal(await main(['experiment', 'run', 'order', '--seeds', '1', '--out', out], () => {}), 2);
    assert.equal(await main(['experiment', 'run', 'order', '--override', 'oops', '--out', out], () => {}), 2);
    assert.equal(getRecipe('order').variants.length, 2);
  } finally {
    tmp.cleanup();
  }
});

test('a recipe runs on CIFAR-10 when given (32×32×3 networks)', async () => {
  const tmp = makeTempDir('experiment-cifar');
  try {
    const dir = join(tmp.dir, 'cifar-10-batches-bin');
    mkdirSync(dir, { recursive: true });
    for (let i = 1; i <= 5; i++) writeFileSync(join(dir, `data_batch_${i}.bin`), cifarBatch(4, 'cifar10', (i - 1) * 4));
    writeFileSync(join(dir, 'test_batch.bin'), cifarBatch(8, 'cifar10', 100));
    const r = await runExperiment('order', {
      outDir: join(tmp.dir, 'out'),
      dataset: `cifar10:${dir}`,
      seeds: 2,
      batchSize: 10,
      limitTrain: 20,
      modelOverrides: { width: 1 / 16, middleBlocks: 1 },
      progress: quiet,
    });
    assert.equal(r.results.length, 4);
    const v = getRecipe('order').variants[0]!;
    const res = r.results.find((x) => x.variant === v.name)!;
    assert.equal(res.params, variantInfo({ ...v, options: res.modelOptions }, [32, 32, 3], 10).params);
    assert.equal(res.dataset, `cifar10:${dir}`);
  } finally {
    tmp.cleanup();
  }
});

test('jft-style runs end to end at a tiny size: multi-label mosaics through the runner, judged and reported on MAP@100', async () => {
  const tmp = makeTempDir('experiment-jft');
  try {
    const items = join(tmp.dir, 'items');
    writeIdxDataset(items, { trainCount: 40, testCount: 20, h: 8, w: 8 });
    const recipe = getRecipe('jft-style');
    const r = await runExperiment('jft-style', {
      outDir: join(tmp.dir, 'out'),
      dataset: `fashion-mosaic:dir=${items},size=16,items=1-2,train=32,test=16,seed=1`,
      seeds: 2,
      batchSize: 16,
      modelOverrides: { width: 1 / 16 },
      progress: quiet,
      speedRounds: 1,
    });
    assert.equal(r.interrupted, false);
    assert.equal(r.results.length, recipe.variants.length * 2);
    for (const res of r.results) {
      assert.equal(res.metric, 'map', res.variant);
      assert.ok(res.finalMetric! > 0 && res.finalMetric! <= 1, `${res.variant}: MAP@100 ${res.finalMetric}`);
      assert.equal(res.modelOptions['classifierActivation'], 'sigmoid');
      assert.equal(
        res.modelOptions['fcLayers'] !== undefined && (res.modelOptions['fcLayers'] as number[]).length > 0,
        res.variant.endsWith('-fc'),
      );
    }
    const rep = await writeReport(r.dir);
    const md = readFileSync(rep.markdownFile, 'utf8');
    assert.match(md, /final MAP@100/);
    for (const v of recipe.variants) assert.ok(md.includes(`| ${v.label} |`), `no table row for ${v.name}`);
    assertClaimParagraph('jft-style', rep.summaries[0]!.verdict, md);
  } finally {
    tmp.cleanup();
  }
});
