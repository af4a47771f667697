/**
 * One training step (forward, loss, backward, update) and the main job's network options: the
 * parts of training with no Node built-ins, shared by the trainer and the browser build.
 */
import { backward } from '../core/autograd.js';
import type { Backend } from '../core/backend.js';
import { tensor } from '../core/creation.js';
import { tidy } from '../core/engine.js';
import type { Batch } from '../data/loader.js';
import type { Model } from '../nn/model.js';
import type { ExponentialMovingAverage } from './ema.js';
import { correctAtOne, trainingLoss } from './multilabel.js';
import { clearGrad, type Optimizer, TrainingDivergedError } from './optimizers.js';

/**
 * The main job's network, for the built-in 28×28 and 32×32 datasets: the small stem, a quarter of
 * the channels. Batch-norm momentum: Keras's 0.99. 0.9 follows the weights faster (better early
 * epochs: 75.8% vs 50.8% test after one) but ends noisier (92.02% vs 92.47% after five).
 */
export const SMALL_IMAGE_MODEL_OPTIONS = { stem: 'small', width: 0.25, bnMomentum: 0.99 } as const;
// Measured on the 2-core machine: 2 middle blocks × 5 epochs (92.47%, 631 s) beat
// 8 middle blocks × 3 epochs (91.43%, 602 s) within the ten-minute budget.
export const SMALL_IMAGE_XCEPTION_OPTIONS = { ...SMALL_IMAGE_MODEL_OPTIONS, middleBlocks: 2 } as const;

export interface TrainingStepParts {
  model: Model;
  optimizer: Optimizer;
  ema: ExponentialMovingAverage | null;
  labelSmoothing: number;
  classes: number;
  backend: Backend;
  /** Sigmoid cross-entropy against multi-hot targets instead of softmax cross-entropy. */
  multiLabel?: boolean;
  /** A model trained from scratch: the run's steps so far, to warm batch norm's statistics up by. */
  statisticsStep?: number;
}

/**
 * One optimizer step on a batch: forward, loss, backward, update. A non-finite loss or gradient
 * throws TrainingDivergedError with every weight as it was before the step — the batch-norm
 * moving statistics the forward pass moved are put back, and the optimizer checks every gradient
 * before it changes anything. Returns the loss and the batch's correct top-1 count.
 */
export function trainingStep(parts: TrainingStepParts, batch: Batch): { loss: number; correct: number } {
  const { model, optimizer, ema, backend } = parts;
  const lossChoice = { multiLabel: parts.multiLabel ?? false, labelSmoothing: parts.labelSmoothing, classes: parts.classes };
  const statistics = model.weights.filter((v) => !v.trainableByNature).map((v) => ({ v, data: v.value.data() }));
  const restoreStatistics = () => statistics.forEach(({ v, data }) => v.setData(data));
  let loss: number, logits: Float32Array;
  // A step that fails before the update (diverged, or an error such as memory running out) leaves
  // the model as it was: no gradients, the batch-norm statistics its forward pass moved restored.
  try {
    ({ loss, logits } = tidy(() => {
      const x = tensor(batch.x, batch.shape, { backend });
      const out = model.forward(x, { training: true, logits: true, statisticsStep: parts.statisticsStep });
      const l = trainingLoss(out, batch, lossChoice);
      const value = l.item();
      const logits = out.data(); // before backward, which releases the activations
      if (Number.isFinite(value)) backward(l, { release: true });
      return { loss: value, logits };
    }));
    if (!Number.isFinite(loss)) throw new TrainingDivergedError(`the loss became ${loss}`);
    optimizer.apply(model.weights);
  } catch (e) {
    for (const v of model.weights) clearGrad(v);
    restoreStatistics();
    throw e;
  }
  if (ema) ema.update(model.trainableWeights);
  return { loss, correct: correctAtOne(logits, batch, lossChoice) };
}
