import { test } from 'node:test';
import assert from 'node:assert/strict';
import { curvesSvg } from '../../src/train/curves.js';

const epochs = [1, 2, 3];

test('multi-label curves draw the evaluation MAP@100 in place of the undefined accuracy; single-label ones top-1 accuracy', () => {
  const multi = epochs.map((epoch) => ({
    epoch,
    trainLoss: 0.5 / epoch,
    trainTop1: 0.3 * epoch,
    evalLoss: 0.6 / epoch,
    evalTop1: Number.NaN,
    evalMap: 0.2 * epoch,
  }));
  const svg = curvesSvg(multi, 'test');
  assert.match(svg, />MAP@100</);
  assert.match(svg, />MAP@100 \(%\)</);
  assert.doesNotMatch(svg, /Top-1 accuracy/);
  // Loss: train and test, 3 points each; MAP@100: the evaluation's 3 (training measures none).
  assert.equal(svg.match(/<circle /g)?.length, 9);
  // The MAP chart's y axis spans the MAP values (20–60%), not the training precision at 1 (30–90%).
  assert.match(svg, />60</);
  assert.doesNotMatch(svg, />90</);

  const single = multi.map(({ evalMap: _m, ...r }) => ({ ...r, evalTop1: 0.25 * r.epoch }));
  const plain = curvesSvg(single, 'test');
  assert.match(plain, /Top-1 accuracy/);
  assert.doesNotMatch(plain, /MAP@100/);
  assert.equal(plain.match(/<circle /g)?.length, 12);
});
