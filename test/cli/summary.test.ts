import { test } from 'node:test';
import assert from 'node:assert/strict';
import { main } from '../../src/cli/main.js';

async function run(args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const code = await main(args, (s) => (out += s));
  return { code, out };
}

test("xception summary --json reports Keras's counts and layers without the batch dimension", async () => {
  const { code, out } = await run(['summary', '--json', '--no-top', '--input-shape', '71,71,3']);
  assert.equal(code, 0);
  const s = JSON.parse(out);
  assert.equal(s.totalParams, 20_861_480);
  assert.equal(s.trainableParams + s.nonTrainableParams, s.totalParams);
  assert.deepEqual(s.layers.at(-1).outputShape, [3, 3, 2048]);
  assert.deepEqual(Object.keys(s.layers[0]).sort(), ['connectedTo', 'name', 'outputShape', 'params', 'type']);
});

test('xception summary prints a Keras-like table; research flags reach the model', async () => {
  const { out } = await run(['summary', '--input-shape', '32,32,3', '--stem', 'small', '--classes', '10', '--width', '0.25']);
  assert.match(out, /block2_sepconv1 \(SeparableConv2D\)\s+\(None, 32, 32, 32\)/);
  assert.match(out, /Total params: [\d,]+/);
  const a = JSON.parse((await run(['summary', '--json', '--input-shape', '71,71,3', '--classes', '10', '--middle-blocks', '1'])).out);
  const b = JSON.parse(
    (await run(['summary', '--json', '--input-shape', '71,71,3', '--classes', '10', '--middle-blocks', '1', '--no-residual'])).out,
  );
  assert.ok(b.totalParams < a.totalParams);
  assert.ok(!b.layers.some((l: { type: string }) => l.type === 'Add'));
  const c = JSON.parse(
    (await run(['summary', '--json', '--input-shape', '71,71,3', '--classes', '10', '--middle-blocks', '1', '--segments', '2'])).out,
  );
  assert.ok(c.totalParams > a.totalParams);
});

test('bad summary input is a clear error with exit code 2, not a crash', async () => {
  const errors: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => (errors.push(String(s)), true)) as typeof process.stderr.write;
  try {
    assert.equal((await run(['summary', '--input-shape', '64,64,3'])).code, 2);
    assert.equal((await run(['summary', '--segments', '3'])).code, 2);
    assert.equal((await run(['summary', '--bogus'])).code, 2);
    assert.equal((await run(['summary', '--input-shape', 'big'])).code, 2);
    assert.equal((await run(['frobnicate'])).code, 2);
  } finally {
    process.stderr.write = write;
  }
  const text = errors.join('');
  assert.match(text, /at least 71/);
  assert.match(text, /segments 3 does not divide/);
  assert.match(text, /Unknown option '--bogus'/);
  assert.match(text, /HEIGHT,WIDTH,CHANNELS/);
  assert.match(text, /unknown command 'frobnicate'/);
});
