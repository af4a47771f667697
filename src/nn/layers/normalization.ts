import { fill } from '../../core/creation.js';
import { OptionError, ShapeError, shapeToString } from '../../core/errors.js';
import { batchNormInference, batchNormTrain } from '../../core/ops/normalization.js';
import type { Tensor } from '../../core/tensor.js';
import { Layer, singleShape, type BuildContext, type CallContext, type LayerOptions, type Shape, type Variable } from '../layer.js';

export interface BatchNormalizationOptions extends LayerOptions {
  /** Keras defaults: momentum 0.99, epsilon 1e-3. */
  momentum?: number;
  epsilon?: number;
  /** Learn gamma (Inception V3 sets this false). */
  scale?: boolean;
  /** Learn beta. */
  center?: boolean;
}

/**
 * Keras BatchNormalization over the last axis. Weights in Keras order: gamma, beta,
 * moving_mean, moving_variance. A frozen layer (trainable = false) runs in inference mode,
 * as in TensorFlow 2 Keras, so fine-tuning does not disturb its statistics. `inferenceMode`
 * does the same for a layer that still trains gamma and beta (Keras's `base(x, training=False)`
 * during fine-tuning: a small dataset's batch statistics would overwrite what the base learned).
 */
export class BatchNormalization extends Layer {
  readonly className = 'BatchNormalization';
  readonly momentum: number;
  readonly epsilon: number;
  readonly scale: boolean;
  readonly center: boolean;
  gamma: Variable | null = null;
  beta: Variable | null = null;
  movingMean!: Variable;
  movingVariance!: Variable;
  /**
   * Normalize with the moving statistics even when training, and leave them unchanged; gamma
   * and beta still get gradients while the layer is trainable. Default false.
   */
  inferenceMode = false;
  private constantGamma: Tensor | null = null;
  private constantBeta: Tensor | null = null;

  constructor(opts: BatchNormalizationOptions = {}) {
    super(opts, 'batch_normalization');
    this.momentum = opts.momentum ?? 0.99;
    this.epsilon = opts.epsilon ?? 1e-3;
    this.scale = opts.scale ?? true;
    this.center = opts.center ?? true;
    if (!(this.momentum >= 0 && this.momentum <= 1))
      throw new OptionError(`${this.name}: momentum must be in [0, 1], got ${opts.momentum}`);
    if (!(this.epsilon > 0)) throw new OptionError(`${this.name}: epsilon must be positive, got ${opts.epsilon}`);
  }

  computeOutputShape(inputShapes: readonly Shape[]): Shape {
    const s = singleShape(this, inputShapes);
    if (s.length < 1) throw new ShapeError(`${this.name}: needs an input with a channel axis, got ${shapeToString(s)}`);
    return s;
  }

  protected override build(inputShapes: readonly Shape[], ctx: BuildContext): void {
    const s = inputShapes[0]!;
    const c = s[s.length - 1]!;
    if (this.scale) this.gamma = this.addWeight('gamma', [c], 'ones', ctx);
    else this.constantGamma = fill([c], 1, { backend: ctx.backend });
    if (this.center) this.beta = this.addWeight('beta', [c], 'zeros', ctx);
    else this.constantBeta = fill([c], 0, { backend: ctx.backend });
    this.movingMean = this.addWeight('moving_mean', [c], 'zeros', ctx, false);
    this.movingVariance = this.addWeight('moving_variance', [c], 'ones', ctx, false);
  }

  call(inputs: readonly Tensor[], ctx: CallContext): Tensor {
    return this.normalize(inputs[0]!, ctx, false);
  }

  /** relu(call(inputs)) in one kernel; the model uses it when a ReLU is this layer's only consumer. */
  callWithRelu(inputs: readonly Tensor[], ctx: CallContext): Tensor {
    return this.normalize(inputs[0]!, ctx, true);
  }

  private normalize(x: Tensor, ctx: CallContext, relu: boolean): Tensor {
    const gamma = this.gamma ? this.gamma.read() : this.constantGamma!;
    const beta = this.beta ? this.beta.read() : this.constantBeta!;
    if (ctx.training && this.trainable && !this.inferenceMode) {
      const momentum = warmedMomentum(this.momentum, ctx.statisticsStep);
      const r = batchNormTrain(x, gamma, beta, this.movingMean.read(), this.movingVariance.read(), momentum, this.epsilon, { relu });
      this.movingMean.assign(r.movingMean);
      this.movingVariance.assign(r.movingVariance);
      return r.y;
    }
    return batchNormInference(x, gamma, beta, this.movingMean.read(), this.movingVariance.read(), this.epsilon, { relu });
  }
}

/** The momentum of a statistics update at `step` while warming up (see ForwardOptions.statisticsStep). */
export function warmedMomentum(momentum: number, step: number | undefined): number {
  return step === undefined ? momentum : Math.min(momentum, (1 + step) / (10 + step));
}
