/** Classification metrics and evaluation over a dataset. */
import { tensor } from '../core/creation.js';
import { noGrad, tidy } from '../core/engine.js';
import { softmaxCrossEntropy } from '../core/ops/loss.js';
import type { Batch } from '../data/loader.js';
import { cachedCompiledInference } from '../infer/auto.js';
import type { Model } from '../nn/model.js';
import { topKCorrect } from './top-k.js';

export { topKCorrect } from './top-k.js';

export interface EvalResult {
  loss: number;
  top1: number;
  top5: number;
  count: number;
}

/** Mean loss and top-1/top-5 accuracy of the model over batches (inference mode). */
export async function evaluate(model: Model, batches: AsyncIterable<Batch> | Iterable<Batch>, classes: number): Promise<EvalResult> {
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
