/**
 * Where the library itself infers (predict, evaluate), the compiled plan is used when it is a
 * drop-in: the model's weights live on the native backend, the model compiles, and
 * XCEPTION_COMPILED is not '0'. Otherwise (reference backend, an uncompilable layer, a plan the
 * addon refused) callers fall back to model.forward, op by op.
 */
import type { Model } from '../nn/model.js';
import { CompiledInference } from './compiled.js';

interface ModelPlans {
  /** Why compiling failed (then it is not tried again for this model). */
  failed: string | null;
  plans: Map<string, CompiledInference>;
}

const perModel = new WeakMap<Model, ModelPlans>();
/** Plans kept per model (e.g. the full batch and a last, smaller one); older ones are freed. */
const MAX_PLANS = 2;

/** False when XCEPTION_COMPILED=0 turns the compiled path off (for comparisons). */
export function compiledInferenceEnabled(): boolean {
  return process.env['XCEPTION_COMPILED'] !== '0';
}

/**
 * A cached plan for `model` at this batch, or null when the op-by-op path must run. Never throws
 * for a model that cannot be compiled: the reason is kept in `compiledFallbackReason(model)`.
 */
export function cachedCompiledInference(model: Model, batch: number, logits: boolean): CompiledInference | null {
  if (!compiledInferenceEnabled()) return null;
  const backend = model.weights[0]?.value.backend;
  if (backend?.name !== 'native') return null;
  let entry = perModel.get(model);
  if (!entry) {
    entry = { failed: null, plans: new Map() };
    perModel.set(model, entry);
    model.onDispose(() => releaseCompiledInference(model));
  }
  if (entry.failed !== null) return null;
  const key = `${batch}/${logits}`;
  const hit = entry.plans.get(key);
  if (hit && !hit.disposed) {
    // Most recently used last.
    entry.plans.delete(key);
    entry.plans.set(key, hit);
    return hit;
  }
  let plan: CompiledInference;
  try {
    plan = new CompiledInference(model, { batch, logits });
  } catch (e) {
    entry.failed = e instanceof Error ? e.message : String(e);
    return null;
  }
  entry.plans.set(key, plan);
  while (entry.plans.size > MAX_PLANS) {
    const [oldKey, old] = entry.plans.entries().next().value as [string, CompiledInference];
    old.dispose();
    entry.plans.delete(oldKey);
  }
  return plan;
}

/** Why the compiled path is not used for `model` (null if it is, or was not tried). */
export function compiledFallbackReason(model: Model): string | null {
  return perModel.get(model)?.failed ?? null;
}

/** Frees the cached plans of `model` (they are also freed when the model is garbage collected). */
export function releaseCompiledInference(model: Model): void {
  const entry = perModel.get(model);
  if (!entry) return;
  for (const p of entry.plans.values()) p.dispose();
  entry.plans.clear();
}
