import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setBackend } from '../../src/index.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { buildModel } from '../../src/models/registry.js';
import { SeparableConv2D } from '../../src/nn/layers/convolutional.js';
import { Add } from '../../src/nn/layers/merge.js';
import { BUDGET_ASSUMPTIONS, RECIPES, budgetMinutes, getRecipe, variantInfo } from '../../src/experiments/recipes.js';
import { main } from '../../src/cli/main.js';

setBackend(referenceBackend);
const { inputShape, classes } = BUDGET_ASSUMPTIONS;

test('there are the five recipes of the issue, each with ≥ 2 variants, ≥ 2 seeds and a budget ≤ 25 min', () => {
  assert.deepEqual(
    RECIPES.map((r) => r.name),
    ['inception-vs-xception', 'residual', 'intermediate-activation', 'order', 'segments'],
  );
  let total = 0;
  for (const r of RECIPES) {
    assert.ok(r.variants.length >= 2 && r.training.seeds >= 2, r.name);
    assert.equal(new Set(r.variants.map((v) => v.name)).size, r.variants.length, `${r.name}: variant names must be unique`);
    // The stated budget is the estimate rounded up, and within the limit.
    assert.equal(r.defaultBudgetMinutes, Math.ceil(budgetMinutes(r)), r.name);
    assert.ok(r.defaultBudgetMinutes <= 25, `${r.name}: ${r.defaultBudgetMinutes} min`);
    total += r.defaultBudgetMinutes;
  }
  assert.ok(total <= 120, `all five: ${total} min`);
  assert.throws(() => getRecipe('nope'), /unknown experiment 'nope' \(known: inception-vs-xception, residual/);
});

test('each ablation varies exactly its switch; the built networks carry it', () => {
  for (const name of ['residual', 'intermediate-activation', 'order', 'segments']) {
    const r = getRecipe(name);
    const values = r.variants.map((v) => JSON.stringify(v.options[r.varies]));
    assert.equal(new Set(values).size, r.variants.length, `${name}: ${r.varies} must differ between variants`);
    // Everything else equal — except the width of parameter-matched recipes.
    const rest = r.variants.map((v) => {
      const o: Record<string, unknown> = { ...v.options, model: v.model };
      delete o[r.varies];
      if (r.matching) delete o['width'];
      return JSON.stringify(o);
    });
    assert.equal(new Set(rest).size, 1, `${name}: other options differ: ${rest.join(' / ')}`);
    for (const v of r.variants) {
      const m = buildModel(v.model, { ...v.options, inputShape, classes });
      try {
        if (name === 'residual') {
          const adds = m.layers.filter((l) => l instanceof Add).length;
          assert.equal(adds, v.options['residual'] ? 12 : 0, `${v.name}: ${adds} residual additions`);
        } else {
          const seps = m.layers.filter((l): l is SeparableConv2D => l instanceof SeparableConv2D);
          assert.ok(seps.length > 0);
          for (const s of seps) assert.equal(s[r.varies as 'order'], v.options[r.varies], `${v.name}: ${s.name}.${r.varies}`);
        }
      } finally {
        m.dispose();
      }
    }
  }
});

test('parameter counts: equal where the switch adds none, matched where the recipe says so', () => {
  const count = (name: string) => Object.fromEntries(getRecipe(name).variants.map((v) => [v.name, variantInfo(v, inputShape, classes)]));
  const iv = count('inception-vs-xception');
  assert.equal(iv['xception']!.params, 1368332);
  assert.equal(iv['xception']!.trainableParams, 1354700);
  assert.equal(iv['inception_v3']!.params, 1363358);
  assert.equal(iv['inception_v3']!.trainableParams, 1354786);
  assert.ok(Math.abs(iv['xception']!.trainableParams / iv['inception_v3']!.trainableParams - 1) < 0.001);
  const res = count('residual');
  assert.equal(res['residual']!.params, 1368332);
  assert.equal(res['no-residual']!.params, 1305396); // the four strided 1×1 shortcut convs + BN removed
  const act = count('intermediate-activation');
  assert.equal(new Set(Object.values(act).map((i) => i.params)).size, 1, 'activations add no parameters');
  const ord = count('order');
  assert.equal(ord['depthwise-first']!.params, 1368332);
  assert.equal(ord['pointwise-first']!.params, 1372796); // depthwise kernels on the output channels
  const seg = count('segments');
  const expected: Record<string, number> = { 'segments-1': 1925021, 'segments-2': 1956896, 'segments-4': 1920308, depthwise: 1913308 };
  for (const [n, p] of Object.entries(expected)) {
    assert.equal(seg[n]!.params, p, n);
    assert.ok(Math.abs(p / expected['segments-4']! - 1) < 0.02, `${n} is matched within 2%`);
  }
  // Without the width adjustment they would be far apart: the regular conv at width 0.3125 has ~2.5× the parameters.
  const unmatched = variantInfo(
    { name: 'x', label: '', model: 'xception', options: { stem: 'small', width: 0.3125, middleBlocks: 0, segments: 1 } },
    inputShape,
    classes,
  );
  assert.ok(unmatched.params > 2 * expected['segments-4']!);
});

test('xception experiment list and list --json', async () => {
  let text = '';
  assert.equal(await main(['experiment', 'list', '--json'], (s) => (text += s)), 0);
  const arr = JSON.parse(text) as { name: string; description: string; defaultBudgetMinutes: number }[];
  assert.deepEqual(
    arr.map((a) => Object.keys(a)),
    RECIPES.map(() => ['name', 'description', 'defaultBudgetMinutes']),
  );
  assert.deepEqual(
    arr.map((a) => a.defaultBudgetMinutes),
    RECIPES.map((r) => r.defaultBudgetMinutes),
  );
  text = '';
  assert.equal(await main(['experiment', 'list'], (s) => (text += s)), 0);
  assert.match(text, /segments .*4 variants × 3 seeds/);
  for (const sub of [['--help'], ['list', '--help'], ['run', '--help'], ['report', '--help']]) {
    text = '';
    assert.equal(await main(['experiment', ...sub], (s) => (text += s)), 0);
    assert.match(text, /^Usage: xception experiment/);
  }
  assert.equal(await main(['experiment', 'run', 'nope'], () => {}), 2);
  assert.equal(await main(['experiment', 'frobnicate'], () => {}), 2);
});
