import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Dense, InputLayer, Model, tensor, OptionError } from '../../src/index.js';
import { referenceBackend } from '../../src/backends/reference/index.js';
import { Optimizer, type OptimizerName, type OptimizerOptions } from '../../src/train/optimizers.js';

const backend = referenceBackend;

/** A one-weight "model" whose kernel we update with a given gradient. */
function oneWeight(values: number[]) {
  const input = new InputLayer({ shape: [values.length], name: 'in' }).apply([], { backend });
  const dense = new Dense({ units: 1, useBias: false, name: 'd' });
  const model = new Model({ inputs: input, outputs: dense.apply(input, { backend }) });
  const v = dense.kernel;
  v.setData(Float32Array.from(values));
  return { v, model };
}

function stepWith(name: OptimizerName, opts: OptimizerOptions, w0: number[], grads: number[][]): number[] {
  const { v } = oneWeight(w0);
  const opt = new Optimizer(name, opts);
  for (const g of grads) {
    v.read().grad = tensor(g, [g.length, 1], { backend });
    opt.apply([v]);
  }
  return [...v.value.data()];
}

const close = (a: number[], b: number[]) => a.forEach((x, i) => assert.ok(Math.abs(x - b[i]!) < 1e-6, `${a} vs ${b}`));

test('SGD with momentum and with Nesterov match hand-computed steps (Keras rule)', () => {
  // w=1, g=0.5 then g=0.25; lr 0.1, momentum 0.9.
  // step1: v = -0.05, w = 0.95; step2: v = 0.9·-0.05 - 0.025 = -0.07, w = 0.88
  close(stepWith('sgd', { lr: 0.1, momentum: 0.9 }, [1], [[0.5], [0.25]]), [0.88]);
  // Nesterov: step1: v=-0.05, w = 1 + 0.9·-0.05 - 0.05 = 0.905; step2: v=-0.07, w = 0.905 + 0.9·-0.07 - 0.025 = 0.817
  close(stepWith('sgd', { lr: 0.1, momentum: 0.9, nesterov: true }, [1], [[0.5], [0.25]]), [0.817]);
  // Plain SGD with L2 decay 0.1: g' = 0.5 + 0.1 = 0.6, w = 1 - 0.06
  close(stepWith('sgd', { lr: 0.1, momentum: 0, weightDecay: 0.1 }, [1], [[0.5]]), [0.94]);
});

test('RMSprop with momentum (TensorFlow rule) and Adam/AdamW match hand-computed steps', () => {
  // rho 0.9, momentum 0.9, lr 0.01, eps 1e-7, g = 2: ms = 0.4, mom = 0.01·2/sqrt(0.4+1e-7), w = 1 - mom
  const mom = (0.01 * 2) / Math.sqrt(0.4 + 1e-7);
  close(stepWith('rmsprop', { lr: 0.01, rho: 0.9, momentum: 0.9 }, [1], [[2]]), [1 - mom]);
  // Adam first step: m̂ = g, v̂ = g², w -= lr·g/(|g| + eps) ≈ lr·sign(g)
  close(stepWith('adam', { lr: 0.01 }, [1, -1], [[3, -0.5]]), [1 - (0.01 * 3) / (3 + 1e-7), -1 + (0.01 * 0.5) / (0.5 + 1e-7)]);
  // AdamW: additionally w -= lr·wd·w_old
  close(stepWith('adamw', { lr: 0.01, weightDecay: 0.1 }, [2], [[1]]), [2 - 0.01 * (1 / (1 + 1e-7)) - 0.01 * 0.1 * 2]);
});

test('clipping scales by the global norm; state round-trips; bad options are errors', () => {
  // g = [3, 4] (norm 5) clipped to norm 1 → [0.6, 0.8]; plain SGD lr 1.
  close(stepWith('sgd', { lr: 1, momentum: 0, clipNorm: 1 }, [0, 0], [[3, 4]]), [-0.6, -0.8]);
  const { v } = oneWeight([1]);
  const a = new Optimizer('adam', { lr: 0.1 });
  v.read().grad = tensor([1], [1, 1], { backend });
  a.apply([v]);
  const st = a.getState();
  assert.equal(st.step, 1);
  assert.equal(st.slots['d/kernel']!.length, 2);
  const b = new Optimizer('adam', { lr: 0.1 });
  b.setState(st, [v]);
  assert.equal(b.step, 1);
  assert.throws(() => new Optimizer('sgd', { lr: -1 }), OptionError);
  assert.throws(() => new Optimizer('adam', { nesterov: true }), OptionError);
  assert.throws(() => new Optimizer('lion' as OptimizerName), OptionError);
  assert.throws(() => new Optimizer('sgd').setState(st, [v]), OptionError);
});
