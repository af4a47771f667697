/**
 * Where the library itself infers (predict, evaluate), the compiled plan is used when it is a
 * drop-in: the model's weights live on the native backend (or on wasm, fp32), the model compiles, and
 * XCEPTION_COMPILED is not '0'. Otherwise (reference backend, an uncompilable layer, a plan the
 * addon refused) callers fall back to model.forward, op by op.
 */
import { OptionError } from '../core/errors.js';
import type { Model } from '../nn/model.js';
import type { Precision } from './compile.js';
import { CompiledInference } from './compiled.js';
import type { Int8Calibration } from './quant-types.js';

/** The precision the library's own inference of a model runs at (`--precision` on predict and eval). */
export interface InferencePrecision {
  precision: Precision;
  /** Required for 'int8'. */
  calibration?: Int8Calibration;
}

const precisionOf = new WeakMap<Model, InferencePrecision>();

/**
 * Makes predict/evaluate run `model` at this precision (null: fp32, falling back to op by op as
 * usual). A lower precision has no op-by-op path: where its plan cannot be built, inference throws.
 */
export function setInferencePrecision(model: Model, p: InferencePrecision | null): void {
  releaseCompiledInference(model);
  const entry = perModel.get(model);
  if (entry) entry.failed = null;
  if (p && p.precision !== 'fp32') precisionOf.set(model, p);
  else precisionOf.delete(model);
}

/** The precision set by setInferencePrecision (null: fp32). */
export function inferencePrecisionOf(model: Model): InferencePrecision | null {
  return precisionOf.get(model) ?? null;
}

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
  // globalThis.process: the browser build has none (and no switch).
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  return env?.['XCEPTION_COMPILED'] !== '0';
}

/**
 * A cached plan for `model` at this batch, or null when the op-by-op path must run. Never throws
 * for a model that cannot be compiled: the reason is kept in `compiledFallbackReason(model)`.
 */
export function cachedCompiledInference(model: Model, batch: number, logits: boolean): CompiledInference | null {
  const wanted = precisionOf.get(model);
  const backend = model.weights[0]?.value.backend;
  if (!compiledInferenceEnabled() || (backend?.name !== 'native' && backend?.name !== 'wasm')) {
    if (wanted)
      throw new OptionError(`precision ${wanted.precision} runs compiled plans on the native backend only (XCEPTION_COMPILED=0?)`);
    return null;
  }
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
    plan = new CompiledInference(model, { batch, logits, ...wanted });
  } catch (e) {
    if (wanted) throw e;
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
