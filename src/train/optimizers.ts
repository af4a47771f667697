/**
 * Optimizers. Each keeps per-weight state tensors and applies its rule through the backend's
 * in-place `applyUpdate` kernel (formulas in core/backend.ts, UpdateRule).
 */
import type { UpdateRule } from '../core/backend.js';
import { tensor, zeros } from '../core/creation.js';
import { keep } from '../core/engine.js';
import { OptionError, ShapeError, shapeToString, XceptionError } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import type { Variable } from '../nn/layer.js';

/** Training met a non-finite loss, gradient or gradient norm; no weight was changed by that step. */
export class TrainingDivergedError extends XceptionError {}

export type OptimizerName = 'sgd' | 'rmsprop' | 'adam' | 'adamw';
export const OPTIMIZERS: readonly OptimizerName[] = ['sgd', 'rmsprop', 'adam', 'adamw'];

export interface OptimizerOptions {
  lr?: number;
  /** sgd, rmsprop */
  momentum?: number;
  nesterov?: boolean;
  /** rmsprop */
  rho?: number;
  /** adam, adamw */
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  /** L2 decay added to the gradient (sgd, rmsprop, adam); decoupled for adamw. */
  weightDecay?: number;
  /** Clip the gradients' global L2 norm to this value (0 = off). */
  clipNorm?: number;
}

/** Saved optimizer state: the step count and, per weight name, its state arrays. */
export interface OptimizerState {
  name: OptimizerName;
  step: number;
  slots: Record<string, Float32Array[]>;
}

export class Optimizer {
  readonly name: OptimizerName;
  /** The learning rate used by the next step (schedules set it). */
  lr: number;
  readonly momentum: number;
  readonly nesterov: boolean;
  readonly rho: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  readonly clipNorm: number;
  /** Updates applied so far. */
  step = 0;
  private slots = new Map<Variable, Tensor[]>();

  constructor(name: OptimizerName, o: OptimizerOptions = {}) {
    if (!OPTIMIZERS.includes(name)) throw new OptionError(`unknown optimizer '${name}' (known: ${OPTIMIZERS.join(', ')})`);
    this.name = name;
    const dflt = { sgd: 0.01, rmsprop: 0.001, adam: 0.001, adamw: 0.001 }[name];
    this.lr = check('lr', o.lr ?? dflt, 0, Infinity);
    this.momentum = check('momentum', o.momentum ?? (name === 'rmsprop' ? 0.9 : name === 'sgd' ? 0.9 : 0), 0, 1);
    this.nesterov = o.nesterov ?? false;
    if (this.nesterov && name !== 'sgd') throw new OptionError('nesterov applies only to sgd');
    this.rho = check('rho', o.rho ?? 0.9, 0, 1);
    this.beta1 = check('beta1', o.beta1 ?? 0.9, 0, 1);
    this.beta2 = check('beta2', o.beta2 ?? 0.999, 0, 1);
    this.epsilon = check('epsilon', o.epsilon ?? 1e-7, 0, 1);
    this.weightDecay = check('weightDecay', o.weightDecay ?? 0, 0, 1);
    this.clipNorm = check('clipNorm', o.clipNorm ?? 0, 0, Infinity);
  }

  private slotCount(): number {
    if (this.name === 'sgd') return this.momentum > 0 ? 1 : 0;
    return 2;
  }

  private rule(): UpdateRule {
    switch (this.name) {
      case 'sgd':
        return {
          kind: 'sgd',
          lr: this.lr,
          momentum: this.momentum,
          nesterov: this.nesterov,
          weightDecay: this.weightDecay,
        };
      case 'rmsprop':
        return {
          kind: 'rmsprop',
          lr: this.lr,
          rho: this.rho,
          momentum: this.momentum,
          epsilon: this.epsilon,
          weightDecay: this.weightDecay,
        };
      case 'adam':
      case 'adamw':
        return {
          kind: 'adam',
          lr: this.lr,
          beta1: this.beta1,
          beta2: this.beta2,
          epsilon: this.epsilon,
          weightDecay: this.weightDecay,
          decoupledWeightDecay: this.name === 'adamw',
          step: this.step,
        };
    }
  }

  /** Global L2 norm of the gradients of these weights. */
  static gradNorm(vars: readonly Variable[]): number {
    return Math.sqrt(gradSumsOfSquares(vars).reduce((a, b) => a + b, 0));
  }

  /**
   * Applies one update to every trainable weight that has a gradient, then clears the
   * gradients. Returns the gradients' global norm before clipping (NaN when not clipping).
   * A gradient with a NaN or infinite value, or a non-finite norm, throws
   * TrainingDivergedError before any weight or optimizer state changes (the gradients cleared).
   */
  apply(vars: readonly Variable[]): number {
    const live = vars.filter((v) => v.trainable && v.value.grad);
    let norm = NaN;
    try {
      norm = this.checkedNorm(live);
    } catch (e) {
      for (const v of vars) clearGrad(v);
      throw e;
    }
    const gradScale = this.clipNorm > 0 && norm > this.clipNorm ? this.clipNorm / norm : 1;
    this.step++;
    const rule = this.rule();
    for (const v of live) {
      const w = v.value;
      const g = w.grad!;
      if (g.size !== w.size) throw new ShapeError(`${v.name}: gradient ${shapeToString(g.shape)} does not match ${shapeToString(w.shape)}`);
      let state = this.slots.get(v);
      if (!state) {
        state = Array.from({ length: this.slotCount() }, () => keep(zeros(w.shape, { backend: w.backend, dtype: w.dtype })));
        this.slots.set(v, state);
      }
      w.backend.applyUpdate(
        rule,
        w.handle,
        g.handle,
        state.map((t) => t.handle),
        w.size,
        gradScale,
      );
      w.version++; // written in place: compiled inference plans re-read it
    }
    for (const v of vars) clearGrad(v);
    return norm;
  }

  /**
   * One reduction per gradient (Σ g², a backend kernel) finds a NaN or ±Inf anywhere in it:
   * Σ g² in double precision is finite exactly when every float32 g is. The same sums give the
   * global norm clipping needs. Returns that norm, or NaN when not clipping.
   */
  private checkedNorm(live: readonly Variable[]): number {
    const sums = gradSumsOfSquares(live);
    const bad = sums.findIndex((s) => !Number.isFinite(s));
    if (bad >= 0) {
      throw new TrainingDivergedError(`the gradient of ${live[bad]!.name} holds NaN or infinite values (no weight was changed)`);
    }
    if (this.clipNorm === 0) return NaN;
    const norm = Math.sqrt(sums.reduce((a, b) => a + b, 0));
    // Unreachable with finite gradients, but a non-finite norm must never scale an update.
    if (!Number.isFinite(norm))
      throw new TrainingDivergedError(`the gradients' global norm is ${norm}, which clipping cannot scale (no weight was changed)`);
    return norm;
  }

  getState(): OptimizerState {
    const slots: Record<string, Float32Array[]> = {};
    for (const [v, ts] of this.slots) slots[v.name] = ts.map((t) => t.data());
    return { name: this.name, step: this.step, slots };
  }

  /** Restores state saved by getState for the same weights (matched by name). */
  setState(state: OptimizerState, vars: readonly Variable[]): void {
    if (state.name !== this.name) throw new OptionError(`optimizer state is for '${state.name}', not '${this.name}'`);
    const byName = new Map(vars.map((v) => [v.name, v]));
    const next = new Map<Variable, Tensor[]>();
    for (const [name, arrays] of Object.entries(state.slots)) {
      const v = byName.get(name);
      if (!v) throw new OptionError(`optimizer state names weight '${name}', which the model does not have`);
      if (arrays.length !== this.slotCount() || arrays.some((a) => a.length !== v.size)) {
        throw new ShapeError(`optimizer state for '${name}' does not fit a weight of shape ${shapeToString(v.shape)}`);
      }
      next.set(
        v,
        arrays.map((a) => keep(fromArray(a, v))),
      );
    }
    this.disposeSlots();
    this.slots = next;
    this.step = state.step;
  }

  disposeSlots(): void {
    for (const ts of this.slots.values()) for (const t of ts) t.dispose();
    this.slots.clear();
  }
}

/** Σ g² of each weight's gradient (0 without one). */
function gradSumsOfSquares(vars: readonly Variable[]): number[] {
  return vars.map((v) => {
    const g = v.value.grad;
    return g ? v.value.backend.sumSquares(g.handle, g.size) : 0;
  });
}

function fromArray(a: Float32Array, v: Variable): Tensor {
  return tensor(a, v.shape, { backend: v.value.backend });
}

export function clearGrad(v: Variable): void {
  const w = v.value;
  if (w.grad) {
    w.grad.dispose();
    w.grad = null;
  }
}

function check(name: string, v: number, lo: number, hi: number): number {
  if (typeof v !== 'number' || Number.isNaN(v) || v < lo || v > hi) {
    throw new OptionError(`${name} must be a number in [${lo}, ${hi}], got ${v}`);
  }
  return v;
}
