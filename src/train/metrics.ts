/** Classification metrics and evaluation over a dataset. */
import { tensor } from '../core/creation.js';
import { noGrad, tidy } from '../core/engine.js';
import { OptionError, ShapeError } from '../core/errors.js';
import { sigmoidCrossEntropy, softmaxCrossEntropy } from '../core/ops/loss.js';
import type { Batch } from '../data/loader.js';
import { cachedCompiledInference, inferencePrecisionOf } from '../infer/auto.js';
import { CompiledInference } from '../infer/compiled.js';
import type { Tensor } from '../core/tensor.js';
import type { Model } from '../nn/model.js';
import { topKCorrect } from './top-k.js';

export { topKCorrect } from './top-k.js';

/**
 * Average precision at k of one class: the rows ranked by that class's score (highest first, ties
 * in row order), the top k kept, AP@k = (1 / min(k, positives)) · Σ_{i ≤ k, row i positive} precision@i,
 * where precision@i is the share of positives among the first i. null when the class has no positive.
 */
export function averagePrecisionAtK(
  scores: ArrayLike<number>,
  targets: ArrayLike<number>,
  classes: number,
  c: number,
  k: number,
): number | null {
  const rows = Math.floor(targets.length / classes);
  let positives = 0;
  for (let r = 0; r < rows; r++) if (targets[r * classes + c]! >= 0.5) positives++;
  if (positives === 0) return null;
  const order = Array.from({ length: rows }, (_, r) => r);
  order.sort((a, b) => scores[b * classes + c]! - scores[a * classes + c]! || a - b);
  let hits = 0;
  let sum = 0;
  for (let i = 0; i < Math.min(k, rows); i++) {
    if (targets[order[i]! * classes + c]! < 0.5) continue;
    hits++;
    sum += hits / (i + 1);
  }
  return sum / Math.min(k, positives);
}

export interface MeanAveragePrecision {
  /** MAP@k: the mean of the per-class AP@k over the classes that have a positive (a fraction 0–1). */
  map: number;
  /** AP@k of each class; NaN for a class with no positive among the rows. */
  perClass: number[];
  k: number;
}

/**
 * MAP@k of scores [rows, classes] against multi-hot targets (the paper's MAP@100 on FastEval14k,
 * with every class weighted equally: the paper weighted them by how common each is on social
 * media, a score this data does not have). See README / docs/guide.md for a worked example.
 */
export function meanAveragePrecision(
  scores: ArrayLike<number>,
  targets: ArrayLike<number>,
  classes: number,
  k = 100,
): MeanAveragePrecision {
  if (!(Number.isInteger(k) && k >= 1)) throw new OptionError(`map@k: k must be a positive integer, got ${k}`);
  if (scores.length !== targets.length || targets.length % classes !== 0)
    throw new ShapeError(`map@k: ${scores.length} scores and ${targets.length} targets for ${classes} classes`);
  const perClass: number[] = [];
  let sum = 0;
  let counted = 0;
  for (let c = 0; c < classes; c++) {
    const ap = averagePrecisionAtK(scores, targets, classes, c, k);
    perClass.push(ap ?? Number.NaN);
    if (ap !== null) {
      sum += ap;
      counted++;
    }
  }
  return { map: counted === 0 ? Number.NaN : sum / counted, perClass, k };
}

/** The k of MAP@k: the paper's 100. */
export const MAP_K = 100;

export interface EvalResult {
  loss: number;
  top1: number;
  top5: number;
  count: number;
  /** Multi-label evaluation: MAP@100 (a fraction 0–1) and each class's AP@100; top1/top5 are NaN. */
  map?: number;
  perClassAP?: number[];
  /** With `compareFp32` on a model set to a lower precision: the fp32 plan on the same images. */
  fp32?: Fp32Comparison;
}

/** The fp32 plan beside a lower-precision evaluation: its accuracy, and how often the top-1 classes agree. */
export interface Fp32Comparison {
  top1: number;
  top5: number;
  /** Fraction of images whose top-1 class is the same at both precisions. */
  identical: number;
}

export interface EvaluateOptions {
  /** Multi-hot targets, sigmoid loss and MAP@100 instead of top-k. */
  multiLabel?: boolean;
  /** When the model infers at bf16 or int8, also run the fp32 plan and compare (EvalResult.fp32). */
  compareFp32?: boolean;
}

/** Mean loss and top-1/top-5 accuracy of the model over batches (inference mode); MAP@100 with `multiLabel`. */
export async function evaluate(
  model: Model,
  batches: AsyncIterable<Batch> | Iterable<Batch>,
  classes: number,
  options: EvaluateOptions = {},
): Promise<EvalResult> {
  if (options.multiLabel) return evaluateMultiLabel(model, batches, classes);
  const fp32 = options.compareFp32 && inferencePrecisionOf(model) ? new Fp32Plans(model) : null;
  let loss = 0,
    top1 = 0,
    top5 = 0,
    count = 0;
  const k = Math.min(5, classes);
  const ref = { top1: 0, top5: 0, identical: 0 };
  try {
    for await (const b of batches) {
      const r = inferLogits(model, b, (out) => softmaxCrossEntropy(out, b.y).item());
      loss += r.loss * b.size;
      top1 += topKCorrect(r.logits, b.y, classes, 1);
      top5 += topKCorrect(r.logits, b.y, classes, k);
      count += b.size;
      if (!fp32) continue;
      const f = fp32.logits(b);
      ref.top1 += topKCorrect(f, b.y, classes, 1);
      ref.top5 += topKCorrect(f, b.y, classes, k);
      ref.identical += sameTop1(r.logits, f, classes);
    }
  } finally {
    fp32?.dispose();
  }
  if (count === 0) return { loss: NaN, top1: NaN, top5: NaN, count };
  const result: EvalResult = { loss: loss / count, top1: top1 / count, top5: top5 / count, count };
  if (fp32) result.fp32 = { top1: ref.top1 / count, top5: ref.top5 / count, identical: ref.identical / count };
  return result;
}

/** fp32 plans of a model whose own inference runs at a lower precision, one per batch size seen. */
class Fp32Plans {
  private readonly plans = new Map<number, CompiledInference>();
  constructor(private readonly model: Model) {}

  logits(b: Batch): Float32Array {
    let plan = this.plans.get(b.size);
    if (!plan) {
      plan = new CompiledInference(this.model, { batch: b.size, logits: true });
      this.plans.set(b.size, plan);
    }
    const p = plan;
    return noGrad(() => tidy(() => p.run(tensor(b.x, b.shape, { backend: this.model.weights[0]?.value.backend })).data()));
  }

  dispose(): void {
    for (const p of this.plans.values()) p.dispose();
    this.plans.clear();
  }
}

/** How many rows of two [n, classes] score arrays have the same arg-max (the first on ties). */
export function sameTop1(a: Float32Array, b: Float32Array, classes: number): number {
  if (a.length !== b.length || a.length % classes !== 0)
    throw new ShapeError(`sameTop1: ${a.length} and ${b.length} scores for ${classes} classes`);
  let same = 0;
  for (let row = 0; row < a.length; row += classes) if (argMax(a, row, classes) === argMax(b, row, classes)) same++;
  return same;
}

function argMax(v: Float32Array, start: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (v[start + i]! > v[start + best]!) best = i;
  return best;
}

/** A batch's logits in inference mode: a compiled plan where it is a drop-in, else op by op; `loss` sees the output tensor. */
function inferLogits(model: Model, b: Batch, loss: (out: Tensor) => number): { logits: Float32Array; loss: number } {
  return noGrad(() =>
    tidy(() => {
      const x = tensor(b.x, b.shape, { backend: model.weights[0]?.value.backend });
      const plan = cachedCompiledInference(model, b.size, true);
      const out = plan ? plan.run(x) : model.forward(x, { training: false, logits: true });
      return { loss: loss(out), logits: out.data() };
    }),
  );
}

/** Mean binary cross-entropy and MAP@100 (with per-class AP) over batches that carry multi-hot targets. */
async function evaluateMultiLabel(model: Model, batches: AsyncIterable<Batch> | Iterable<Batch>, classes: number): Promise<EvalResult> {
  const scores: Float32Array[] = [];
  const targets: Float32Array[] = [];
  let loss = 0;
  let count = 0;
  for await (const b of batches) {
    const t = batchTargets(b, classes);
    const r = inferLogits(model, b, (out) => sigmoidCrossEntropy(out, t).item());
    loss += r.loss * b.size;
    scores.push(r.logits);
    targets.push(t);
    count += b.size;
  }
  if (count === 0) return { loss: NaN, top1: NaN, top5: NaN, count, map: NaN, perClassAP: [] };
  // Ranking by logits is ranking by sigmoid probabilities (monotonic).
  const m = meanAveragePrecision(concatFloat32(scores), concatFloat32(targets), classes, MAP_K);
  return { loss: loss / count, top1: NaN, top5: NaN, count, map: m.map, perClassAP: m.perClass };
}

/** A multi-label batch's targets; a batch without them is a caller's mistake, named. */
export function batchTargets(b: Batch, classes: number): Float32Array {
  if (!b.targets) throw new OptionError('multi-label evaluation needs data with multi-hot targets (a multi-label dataset)');
  if (b.targets.length !== b.size * classes) throw new ShapeError(`${b.targets.length} targets for ${b.size} rows × ${classes} classes`);
  return b.targets;
}

function concatFloat32(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
