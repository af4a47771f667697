/** Classification metrics and evaluation over a dataset. */
import { tensor } from '../core/creation.js';
import { noGrad, tidy } from '../core/engine.js';
import { OptionError, ShapeError } from '../core/errors.js';
import { sigmoidCrossEntropy, softmaxCrossEntropy } from '../core/ops/loss.js';
import type { Batch } from '../data/loader.js';
import { cachedCompiledInference } from '../infer/auto.js';
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
}

/** Mean loss and top-1/top-5 accuracy of the model over batches (inference mode); MAP@100 with `multiLabel`. */
export async function evaluate(
  model: Model,
  batches: AsyncIterable<Batch> | Iterable<Batch>,
  classes: number,
  multiLabel = false,
): Promise<EvalResult> {
  if (multiLabel) return evaluateMultiLabel(model, batches, classes);
  let loss = 0,
    top1 = 0,
    top5 = 0,
    count = 0;
  for await (const b of batches) {
    const logits = noGrad(() =>
      tidy(() => {
        const x = tensor(b.x, b.shape, { backend: model.weights[0]?.value.backend });
        // A compiled plan where it is a drop-in (native backend, compilable model), else op by op.
        const plan = cachedCompiledInference(model, b.size, true);
        const out = plan ? plan.run(x) : model.forward(x, { training: false, logits: true });
        loss += softmaxCrossEntropy(out, b.y).item() * b.size;
        return out.data();
      }),
    );
    top1 += topKCorrect(logits, b.y, classes, 1);
    top5 += topKCorrect(logits, b.y, classes, Math.min(5, classes));
    count += b.size;
  }
  return count === 0 ? { loss: NaN, top1: NaN, top5: NaN, count } : { loss: loss / count, top1: top1 / count, top5: top5 / count, count };
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
