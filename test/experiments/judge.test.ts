import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judgeClaim, type VariantOutcome } from '../../src/experiments/report.js';
import { getRecipe } from '../../src/experiments/recipes.js';

const v = (name: string, finals: number[], alongRun = finals, stepsPerSec?: number[]): VariantOutcome => ({
  name,
  label: name,
  finals,
  alongRun,
  ...(stepsPerSec ? { stepsPerSec } : {}),
});

test('better: clear win agrees, clear loss does not, overlapping intervals are inconclusive', () => {
  const claim = getRecipe('inception-vs-xception').claim;
  const win = judgeClaim(claim, [
    v('xception', [0.9, 0.91, 0.905], undefined, [10, 10, 10]),
    v('inception_v3', [0.85, 0.86, 0.855], undefined, [12, 12, 12]),
  ]);
  assert.equal(win.verdict, 'agrees');
  assert.match(win.paragraph, /^The paper: Xception is at least as accurate/);
  assert.match(win.paragraph, /Agrees: xception 90\.50% vs inception_v3 85\.50%, a difference of \+5\.00 points/);
  assert.match(win.paragraph, /ratio 0\.83/);
  assert.match(win.paragraph, /ratio 0\.83; the paper measured 28 vs 31 steps\/s/);
  // The paper's speed figure is of Xception vs Inception V3: another comparison does not quote it.
  const vgg = judgeClaim(getRecipe('residual-vgg').claim, [
    v('no-residual', [0.9, 0.91, 0.905], undefined, [10, 10, 10]),
    v('residual', [0.85, 0.86, 0.855], undefined, [12, 12, 12]),
  ]);
  assert.match(vgg.paragraph, /\(ratio 0\.83\)\./);
  assert.doesNotMatch(vgg.paragraph, /the paper measured/);
  const loss = judgeClaim(claim, [v('xception', [0.85, 0.86, 0.855]), v('inception_v3', [0.9, 0.91, 0.905])]);
  assert.equal(loss.verdict, 'does not agree');
  assert.match(loss.paragraph, /Does not agree/);
  const overlap = judgeClaim(claim, [v('xception', [0.88, 0.91, 0.9]), v('inception_v3', [0.87, 0.92, 0.89])]);
  assert.equal(overlap.verdict, 'inconclusive');
  assert.match(overlap.paragraph, /Inconclusive: the intervals overlap/);
  assert.match(overlap.paragraph, /3 seeds per variant/);
});

test('better-and-faster: convergence and final accuracy are judged separately', () => {
  const claim = getRecipe('residual').claim;
  const both = judgeClaim(claim, [
    v('residual', [0.9, 0.91, 0.905], [0.8, 0.81, 0.805]),
    v('no-residual', [0.85, 0.86, 0.855], [0.6, 0.61, 0.605]),
  ]);
  assert.equal(both.verdict, 'agrees');
  // Converges faster but ends equal within noise: only partly.
  const part = judgeClaim(claim, [
    v('residual', [0.88, 0.91, 0.9], [0.8, 0.81, 0.805]),
    v('no-residual', [0.87, 0.92, 0.89], [0.6, 0.61, 0.605]),
  ]);
  assert.equal(part.verdict, 'partly agrees');
  assert.match(part.paragraph, /Convergence .*: agrees\. Final accuracy .*: inconclusive/);
  const neither = judgeClaim(claim, [
    v('residual', [0.85, 0.86, 0.855], [0.6, 0.61, 0.605]),
    v('no-residual', [0.9, 0.91, 0.905], [0.8, 0.81, 0.805]),
  ]);
  assert.equal(neither.verdict, 'does not agree');
});

test('ranking: none > elu > relu judged pair by pair', () => {
  const claim = getRecipe('intermediate-activation').claim;
  const ok = judgeClaim(claim, [v('none', [0.92, 0.921, 0.919]), v('elu', [0.9, 0.901, 0.899]), v('relu', [0.88, 0.881, 0.879])]);
  assert.equal(ok.verdict, 'agrees');
  assert.match(ok.paragraph, /none beats elu .*; elu beats relu/);
  const reversed = judgeClaim(claim, [v('none', [0.88, 0.881, 0.879]), v('elu', [0.9, 0.901, 0.899]), v('relu', [0.92, 0.921, 0.919])]);
  assert.equal(reversed.verdict, 'does not agree');
  assert.match(reversed.paragraph, /Measured order of the means: relu 92\.00% > elu 90\.00% > none 88\.00%/);
  const mixed = judgeClaim(claim, [v('none', [0.92, 0.921, 0.919]), v('elu', [0.9, 0.93, 0.87]), v('relu', [0.88, 0.881, 0.879])]);
  assert.equal(mixed.verdict, 'inconclusive');
  assert.match(mixed.paragraph, /cannot be told apart from/);
  const partly = judgeClaim(claim, [v('none', [0.92, 0.921, 0.919]), v('elu', [0.9, 0.901, 0.899]), v('relu', [0.89, 0.92, 0.87])]);
  assert.equal(partly.verdict, 'partly agrees');
  assert.ok(partly.seedsNeeded !== null, 'partly agrees is undecided: it states the seeds needed');
  // One part decided against the claim refutes it, whatever the other part: decided, no seeds needed.
  const refuted = judgeClaim(claim, [v('none', [0.9, 0.901, 0.899]), v('elu', [0.92, 0.921, 0.919]), v('relu', [0.89, 0.92, 0.87])]);
  assert.equal(refuted.verdict, 'does not agree');
  assert.equal(refuted.seedsNeeded, null);
  assert.match(refuted.paragraph, /none loses to elu .*; elu cannot be told apart from relu/);
});

test('equivalent: within the margin agrees, beyond it does not, straddling it is inconclusive', () => {
  const claim = getRecipe('order').claim;
  assert.equal(claim.kind, 'equivalent');
  const eq = judgeClaim(claim, [v('depthwise-first', [0.9, 0.902, 0.901]), v('pointwise-first', [0.899, 0.901, 0.903])]);
  assert.equal(eq.verdict, 'agrees');
  assert.match(eq.paragraph, /lies within ±1 point/);
  const far = judgeClaim(claim, [v('depthwise-first', [0.9, 0.901, 0.899]), v('pointwise-first', [0.85, 0.851, 0.849])]);
  assert.equal(far.verdict, 'does not agree');
  const wide = judgeClaim(claim, [v('depthwise-first', [0.88, 0.92, 0.9]), v('pointwise-first', [0.87, 0.93, 0.89])]);
  assert.equal(wide.verdict, 'inconclusive');
  assert.match(wide.paragraph, /No difference is detected, but the interval reaches beyond ±1 point/);
});

test('extreme-not-optimal: an intermediate point clearly ahead agrees; depthwise clearly ahead does not', () => {
  const claim = getRecipe('segments').claim;
  const mk = (a: number, b: number, c: number, d: number, spread = 0.001) =>
    [
      ['segments-1', a],
      ['segments-2', b],
      ['segments-4', c],
      ['depthwise', d],
    ].map(([n, m]) => v(n as string, [(m as number) - spread, m as number, (m as number) + spread]));
  const yes = judgeClaim(claim, mk(0.88, 0.9, 0.92, 0.9));
  assert.equal(yes.verdict, 'agrees');
  assert.match(yes.paragraph, /segments-4 beats the extreme \(depthwise\) by \+2\.00 points/);
  assert.match(yes.paragraph, /best of 3 alternatives after the fact/);
  const no = judgeClaim(claim, mk(0.88, 0.89, 0.9, 0.92));
  assert.equal(no.verdict, 'does not agree');
  const unsure = judgeClaim(claim, mk(0.88, 0.89, 0.905, 0.9, 0.02));
  assert.equal(unsure.verdict, 'inconclusive');
  assert.match(unsure.paragraph, /Inconclusive: the intervals overlap/);
});

test('a claim naming a variant with no results is a clear error', () => {
  assert.throws(() => judgeClaim(getRecipe('residual').claim, [v('residual', [0.9, 0.9])]), /names variant 'no-residual'/);
});

test('an undecided verdict states the seeds a decision would need; a decided one none', () => {
  const claim = getRecipe('inception-vs-xception').claim;
  // A +0.5-point difference with a 1.3-point spread on each side: undecided, a finite number of seeds would do
  // (the number itself is checked against a hand-worked example in stats.test.ts).
  const open = judgeClaim(claim, [v('xception', [0.905, 0.895, 0.915, 0.885]), v('inception_v3', [0.9, 0.89, 0.91, 0.88])]);
  assert.equal(open.verdict, 'inconclusive');
  assert.ok(open.seedsNeeded !== null && Number.isFinite(open.seedsNeeded));
  assert.match(open.paragraph, new RegExp(`To decide: about ${open.seedsNeeded} seeds per variant`));
  const decided = judgeClaim(claim, [v('xception', [0.9, 0.91, 0.905]), v('inception_v3', [0.85, 0.86, 0.855])]);
  assert.equal(decided.seedsNeeded, null);
  assert.doesNotMatch(decided.paragraph, /To decide/);
  // The order recipe's committed numbers: −0.96 points against a 1-point margin — no affordable number decides it.
  const order = judgeClaim(getRecipe('order').claim, [
    v('depthwise-first', [0.888, 0.8936, 0.8872]),
    v('pointwise-first', [0.9006, 0.8994, 0.8976]),
  ]);
  assert.equal(order.verdict, 'inconclusive');
  assert.ok(order.seedsNeeded! > 100, String(order.seedsNeeded));
  // The residual recipe's committed finals: 4 seeds at that spread would decide it.
  const residual = judgeClaim(getRecipe('residual').claim, [
    v('residual', [0.888, 0.8936, 0.8872], [0.8, 0.79, 0.78]),
    v('no-residual', [0.6205, 0.7398, 0.7874], [0.4, 0.45, 0.47]),
  ]);
  assert.equal(residual.verdict, 'partly agrees');
  assert.ok(residual.seedsNeeded! >= 4 && residual.seedsNeeded! <= getRecipe('residual').training.seeds, String(residual.seedsNeeded));
});

test('sign-flip: agrees when the activation hurts shallow and helps deep, does not when reversed', () => {
  const claim = getRecipe('activation-depth').claim;
  const outcome = (shallowRelu: number, deepRelu: number) => [
    v('depthwise-none', [0.85, 0.851, 0.852]),
    v('depthwise-relu', [shallowRelu, shallowRelu + 0.001, shallowRelu + 0.002]),
    v('segments4-none', [0.86, 0.861, 0.862]),
    v('segments4-relu', [deepRelu, deepRelu + 0.001, deepRelu + 0.002]),
  ];
  const flip = judgeClaim(claim, outcome(0.83, 0.88));
  assert.equal(flip.verdict, 'agrees');
  assert.match(flip.paragraph, /Shallow segments \(the switch should hurt\): depthwise-relu − depthwise-none: −2\.00 points .*as claimed/);
  assert.match(flip.paragraph, /Deep segments \(it should help\): segments4-relu − segments4-none: \+2\.00 points .*as claimed/);
  assert.equal(judgeClaim(claim, outcome(0.87, 0.84)).verdict, 'does not agree');
  // Hurts on both (the activation-depth recipe's outcome): the sign does not flip — refuted, and decided.
  const noFlip = judgeClaim(claim, outcome(0.83, 0.84));
  assert.equal(noFlip.verdict, 'does not agree');
  assert.equal(noFlip.seedsNeeded, null);
  assert.match(noFlip.paragraph, /^The paper: .* Does not agree\. Shallow .*as claimed\. Deep .*the opposite of the claim\./);
  // Hurts shallow as claimed, deep undecided: partly, with the seeds a decision needs.
  const open = judgeClaim(claim, [...outcome(0.83, 0.86).slice(0, 3), v('segments4-relu', [0.85, 0.87, 0.865])]);
  assert.equal(open.verdict, 'partly agrees');
  assert.ok(open.seedsNeeded !== null);
});

test('better-each: every pair must agree; relative gaps are stated', () => {
  const claim = getRecipe('jft-style').claim;
  const both = judgeClaim(claim, [
    v('xception', [0.6, 0.61, 0.605]),
    v('inception_v3', [0.5, 0.51, 0.505]),
    v('xception-fc', [0.62, 0.63, 0.625]),
    v('inception_v3-fc', [0.52, 0.53, 0.525]),
  ]);
  assert.equal(both.verdict, 'agrees');
  assert.match(both.paragraph, /xception 60\.50% vs inception_v3 50\.50%: \+10\.00 points \(\+19\.80% relative\)/);
  const one = judgeClaim(claim, [
    v('xception', [0.6, 0.61, 0.605]),
    v('inception_v3', [0.5, 0.51, 0.505]),
    v('xception-fc', [0.5, 0.53, 0.56]),
    v('inception_v3-fc', [0.52, 0.5, 0.55]),
  ]);
  assert.equal(one.verdict, 'partly agrees');
  assert.ok(one.seedsNeeded !== null);
});
