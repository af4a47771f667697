/**
 * Exponential moving average of the trainable weights (the paper's Polyak averaging), used in
 * place of the weights for evaluation when enabled.
 */
import { keep } from '../core/engine.js';
import { OptionError, ShapeError } from '../core/errors.js';
import { Tensor } from '../core/tensor.js';
import type { Variable } from '../nn/layer.js';

export class ExponentialMovingAverage {
  private shadow = new Map<Variable, Tensor>();
  updates = 0;

  constructor(readonly decay: number) {
    if (!(decay > 0 && decay < 1)) throw new OptionError(`EMA decay must be in (0, 1), got ${decay}`);
  }

  /**
   * shadow = d·shadow + (1 − d)·w, with d = min(decay, (1 + n)/(10 + n)) so that early averages
   * are not dominated by the random initialization (TensorFlow's num_updates rule).
   */
  update(vars: readonly Variable[]): void {
    const d = Math.min(this.decay, (1 + this.updates) / (10 + this.updates));
    for (const v of vars) {
      const w = v.value;
      const old = this.shadow.get(v);
      if (!old) {
        this.shadow.set(v, keep(new Tensor(w.backend, w.backend.axpby(w.handle, w.handle, 1, 0, w.size), w.shape, w.dtype)));
        continue;
      }
      const next = new Tensor(w.backend, w.backend.axpby(old.handle, w.handle, d, 1 - d, w.size), w.shape, w.dtype);
      old.dispose();
      this.shadow.set(v, keep(next));
    }
    this.updates++;
  }

  /**
   * Runs fn with the averaged weights swapped in, then restores the live ones — after the
   * returned promise settles when fn is async (evaluation awaits its data loader).
   */
  async withAveraged<T>(fn: () => T | Promise<T>): Promise<T> {
    const saved: [Variable, Float32Array][] = [];
    for (const [v, s] of this.shadow) {
      saved.push([v, v.value.data()]);
      v.setData(s.data());
    }
    try {
      return await fn();
    } finally {
      for (const [v, data] of saved) v.setData(data);
    }
  }

  getState(): { decay: number; updates: number; shadow: Record<string, Float32Array> } {
    const shadow: Record<string, Float32Array> = {};
    for (const [v, s] of this.shadow) shadow[v.name] = s.data();
    return { decay: this.decay, updates: this.updates, shadow };
  }

  setState(state: { updates: number; shadow: Record<string, Float32Array> }, vars: readonly Variable[]): void {
    const byName = new Map(vars.map((v) => [v.name, v]));
    const next = new Map<Variable, Tensor>();
    for (const [name, data] of Object.entries(state.shadow)) {
      const v = byName.get(name);
      if (!v) throw new OptionError(`EMA state names weight '${name}', which the model does not have`);
      if (data.length !== v.size) throw new ShapeError(`EMA state for '${name}' has ${data.length} values, the weight ${v.size}`);
      const w = v.value;
      next.set(v, keep(new Tensor(w.backend, w.backend.upload(Float32Array.from(data)), w.shape, w.dtype)));
    }
    this.dispose();
    this.shadow = next;
    this.updates = state.updates;
  }

  dispose(): void {
    for (const s of this.shadow.values()) s.dispose();
    this.shadow.clear();
  }
}
