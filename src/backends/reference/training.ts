/**
 * Reference optimizer updates: the formulas of UpdateRule (core/backend.ts), one weight at a
 * time, in place. The only kernels of the reference backend that write into their inputs.
 */
import type { Handle, NumArray, UpdateRule } from '../../core/backend.js';
import { asArray, check } from './arrays.js';

type Arr = NumArray;

export function applyUpdate(rule: UpdateRule, wh: Handle, gh: Handle, stateH: readonly Handle[], size: number, gradScale: number): void {
  const w = asArray(wh, size, 'applyUpdate param');
  const grad = asArray(gh, size, 'applyUpdate grad');
  const want = rule.kind === 'sgd' ? (rule.momentum > 0 ? 1 : 0) : 2;
  check(stateH.length === want, `applyUpdate ${rule.kind}: ${stateH.length} state buffers, expected ${want}`);
  const state = stateH.map((h, i) => asArray(h, size, `applyUpdate state ${i}`));
  check(Number.isFinite(gradScale), 'applyUpdate: gradScale must be finite');
  switch (rule.kind) {
    case 'sgd': {
      const v = state[0] as Arr | undefined;
      for (let i = 0; i < size; i++) {
        const g = gradScale * grad[i]! + rule.weightDecay * w[i]!;
        if (v) {
          const vel = rule.momentum * v[i]! - rule.lr * g;
          v[i] = vel;
          w[i] = w[i]! + (rule.nesterov ? rule.momentum * vel - rule.lr * g : vel);
        } else {
          w[i] = w[i]! - rule.lr * g;
        }
      }
      return;
    }
    case 'rmsprop': {
      const [ms, mom] = state as [Arr, Arr];
      for (let i = 0; i < size; i++) {
        const g = gradScale * grad[i]! + rule.weightDecay * w[i]!;
        ms[i] = rule.rho * ms[i]! + (1 - rule.rho) * g * g;
        mom[i] = rule.momentum * mom[i]! + (rule.lr * g) / Math.sqrt(ms[i]! + rule.epsilon);
        w[i] = w[i]! - mom[i]!;
      }
      return;
    }
    case 'adam': {
      const [m, v] = state as [Arr, Arr];
      const c1 = 1 - rule.beta1 ** rule.step;
      const c2 = 1 - rule.beta2 ** rule.step;
      for (let i = 0; i < size; i++) {
        const old = w[i]!;
        const g = gradScale * grad[i]! + (rule.decoupledWeightDecay ? 0 : rule.weightDecay * old);
        m[i] = rule.beta1 * m[i]! + (1 - rule.beta1) * g;
        v[i] = rule.beta2 * v[i]! + (1 - rule.beta2) * g * g;
        const step = m[i]! / c1 / (Math.sqrt(v[i]! / c2) + rule.epsilon);
        w[i] = old - rule.lr * (step + (rule.decoupledWeightDecay ? rule.weightDecay * old : 0));
      }
      return;
    }
  }
}

export function sumSquares(h: Handle, size: number): number {
  const x = asArray(h, size, 'sumSquares x');
  let s = 0;
  for (let i = 0; i < size; i++) s += x[i]! * x[i]!;
  return s;
}
