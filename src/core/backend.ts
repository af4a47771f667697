/**
 * The kernel contract.
 *
 * A backend receives storage handles and fully resolved numbers: every shape, padding, stride
 * and output size was validated and computed once, in TypeScript (see `core/ops`). A backend
 * never re-derives them; a native backend may assert them, but never trusts anything else.
 *
 * Logical layouts (what `upload`/`download` exchange and what the numbers below describe):
 * - activations NHWC, row-major;
 * - convolution filters [kernelHeight, kernelWidth, inChannels / groups, outChannels] (Keras HWIO);
 *   output channel `o` belongs to group `floor(o / (outChannels / groups))` and reads input
 *   channels `g * inChannels/groups …`. A Keras depthwise kernel [kh, kw, C, multiplier] has the
 *   very same memory order, read as groups = C, outChannels = C * multiplier;
 * - dense weights [in, out]; matrices row-major.
 * A backend may keep its own layout inside a handle between its own kernels.
 *
 * Kernels never modify their inputs and always return new handles, so autograd can keep any
 * tensor it recorded. (Optimizer updates are the one in-place family, and say so.)
 */

export type DType = 'float32' | 'float64';
export type NumArray = Float32Array | Float64Array;

/** An opaque, backend-owned piece of memory. Only the backend that made it may read it. */
export type Handle = object;

export interface Conv2DParams {
  batch: number;
  inHeight: number;
  inWidth: number;
  inChannels: number;
  outHeight: number;
  outWidth: number;
  outChannels: number;
  kernelHeight: number;
  kernelWidth: number;
  strideHeight: number;
  strideWidth: number;
  dilationHeight: number;
  dilationWidth: number;
  /** Zero padding before the first row / column; `same` puts the odd extra pixel at the end. */
  padTop: number;
  padLeft: number;
  padBottom: number;
  padRight: number;
  groups: number;
}

export interface Pool2DParams {
  batch: number;
  inHeight: number;
  inWidth: number;
  channels: number;
  outHeight: number;
  outWidth: number;
  windowHeight: number;
  windowWidth: number;
  strideHeight: number;
  strideWidth: number;
  /** Padded cells never win a max and never count in an average (TensorFlow's rule). */
  padTop: number;
  padLeft: number;
  padBottom: number;
  padRight: number;
}

/** Rows × channels view of an NHWC tensor: rows = N·H·W. */
export interface RowsParams {
  rows: number;
  channels: number;
}

export interface BatchNormParams extends RowsParams {
  epsilon: number;
  /**
   * Batch norm followed by ReLU in one kernel: the output is max(0, ·) (NaN stays NaN, as relu),
   * and the backward takes that output `y` and drops dy where y ≤ 0. Saves a pass over memory each way.
   */
  relu?: boolean;
}

/** N × H·W × C view for global pooling. */
export interface GlobalPoolParams {
  batch: number;
  spatial: number;
  channels: number;
}

export interface MatMulParams {
  /** result is [m, n]; a is [m, k] (or [k, m] if transA); b is [k, n] (or [n, k] if transB). */
  m: number;
  k: number;
  n: number;
  transA: boolean;
  transB: boolean;
}

export interface CrossEntropyParams extends RowsParams {
  /** Keras label smoothing: target = onehot·(1−s) + s/classes. */
  labelSmoothing: number;
}

/**
 * Optimizer update rules, applied in place by `applyUpdate`. With g = gradScale·grad, and
 * g' = g + weightDecay·w for the coupled (L2) decay the paper used:
 * - sgd (Keras): v = momentum·v − lr·g';  w += nesterov ? momentum·v − lr·g' : v.
 *   state: [v]; with momentum 0 the state is empty and w −= lr·g'.
 * - rmsprop (TensorFlow, the paper's JFT set-up): ms = rho·ms + (1−rho)·g'²;
 *   mom = momentum·mom + lr·g'/sqrt(ms + epsilon);  w −= mom.  state: [ms, mom].
 * - adam: m = beta1·m + (1−beta1)·g'; v = beta2·v + (1−beta2)·g'²; m̂ = m/(1−beta1^step),
 *   v̂ = v/(1−beta2^step);  w −= lr·m̂/(sqrt(v̂) + epsilon). state: [m, v].
 *   With decoupledWeightDecay (AdamW) g' = g and w −= lr·weightDecay·w_old as well.
 */
export type UpdateRule =
  | { kind: 'sgd'; lr: number; momentum: number; nesterov: boolean; weightDecay: number }
  | { kind: 'rmsprop'; lr: number; rho: number; momentum: number; epsilon: number; weightDecay: number }
  | {
      kind: 'adam';
      lr: number;
      beta1: number;
      beta2: number;
      epsilon: number;
      weightDecay: number;
      decoupledWeightDecay: boolean;
      /** 1 for the first update. */
      step: number;
    };

export interface Backend {
  readonly name: string;
  /** dtypes this backend computes in; float64 exists for gradient checks on the reference. */
  readonly dtypes: readonly DType[];

  // --- memory -------------------------------------------------------------------------------
  upload(data: NumArray): Handle;
  /** A fresh copy in the logical layout, of the given dtype. */
  download(h: Handle, size: number, dtype: DType): NumArray;
  zeros(size: number, dtype: DType): Handle;
  dispose(h: Handle): void;

  // --- elementwise, flat over `size` elements -----------------------------------------------
  /** alpha·a + beta·b. Covers add, subtract, scale, moving averages. */
  axpby(a: Handle, b: Handle, alpha: number, beta: number, size: number): Handle;
  mul(a: Handle, b: Handle, size: number): Handle;
  scale(a: Handle, s: number, size: number): Handle;
  /** max(x, 0), with relu(NaN) = NaN as in PyTorch: a NaN is never hidden as 0. */
  relu(x: Handle, size: number): Handle;
  /** 0 where y ≤ 0, else dy (so dy passes where y is NaN, as in PyTorch). */
  reluBackward(dy: Handle, y: Handle, size: number): Handle;
  elu(x: Handle, alpha: number, size: number): Handle;
  /** dy where y > 0, else dy·(y + alpha). */
  eluBackward(dy: Handle, y: Handle, alpha: number, size: number): Handle;

  // --- convolution --------------------------------------------------------------------------
  conv2d(x: Handle, w: Handle, p: Conv2DParams): Handle;
  conv2dBackwardInput(dy: Handle, w: Handle, p: Conv2DParams): Handle;
  conv2dBackwardFilter(x: Handle, dy: Handle, p: Conv2DParams): Handle;

  // --- normalization ------------------------------------------------------------------------
  /** Batch statistics: mean and biased variance per channel. */
  batchNormTrain(x: Handle, gamma: Handle, beta: Handle, p: BatchNormParams): { y: Handle; mean: Handle; variance: Handle };
  batchNormInference(x: Handle, gamma: Handle, beta: Handle, mean: Handle, variance: Handle, p: BatchNormParams): Handle;
  /** Backward of batchNormTrain (statistics depend on x). With `p.relu`, `y` is the forward's output. */
  batchNormBackward(
    dy: Handle,
    x: Handle,
    gamma: Handle,
    mean: Handle,
    variance: Handle,
    p: BatchNormParams,
    y?: Handle,
  ): { dx: Handle; dgamma: Handle; dbeta: Handle };

  // --- pooling ------------------------------------------------------------------------------
  maxPool2d(x: Handle, p: Pool2DParams): Handle;
  /** Gradient goes to the first maximum of each window (row-major scan). */
  maxPool2dBackward(dy: Handle, x: Handle, p: Pool2DParams): Handle;
  avgPool2d(x: Handle, p: Pool2DParams): Handle;
  avgPool2dBackward(dy: Handle, p: Pool2DParams): Handle;
  globalAvgPool(x: Handle, p: GlobalPoolParams): Handle;
  globalAvgPoolBackward(dy: Handle, p: GlobalPoolParams): Handle;
  globalMaxPool(x: Handle, p: GlobalPoolParams): Handle;
  globalMaxPoolBackward(dy: Handle, x: Handle, p: GlobalPoolParams): Handle;

  // --- dense and channel bookkeeping --------------------------------------------------------
  matmul(a: Handle, b: Handle, p: MatMulParams): Handle;
  /** x[rows, channels] + bias[channels] broadcast over rows. */
  biasAdd(x: Handle, bias: Handle, p: RowsParams): Handle;
  /** Sum over rows: [rows, channels] → [channels]. */
  sumRows(x: Handle, p: RowsParams): Handle;
  /** Concatenate along the last axis: inputs [rows, channels[i]] → [rows, Σ channels]. */
  concatChannels(xs: readonly Handle[], rows: number, channels: readonly number[]): Handle;
  /** Columns [start, start + count) of x[rows, channels]. */
  sliceChannels(x: Handle, p: RowsParams, start: number, count: number): Handle;

  // --- training ----------------------------------------------------------------------------
  /** The one in-place kernel: updates `param` and its `state` buffers (see UpdateRule). */
  applyUpdate(rule: UpdateRule, param: Handle, grad: Handle, state: readonly Handle[], size: number, gradScale: number): void;
  /** Σ x² over `size` elements (gradient-norm clipping, diagnostics). */
  sumSquares(x: Handle, size: number): number;

  // --- classification -----------------------------------------------------------------------
  softmax(x: Handle, p: RowsParams): Handle;
  /** Mean cross-entropy over rows of softmax(logits) against integer labels. */
  softmaxCrossEntropy(logits: Handle, labels: Int32Array, p: CrossEntropyParams): { loss: number; probs: Handle };
  /** d(loss)/d(logits) = (probs − target) · scale / rows. */
  softmaxCrossEntropyBackward(probs: Handle, labels: Int32Array, p: CrossEntropyParams, scale: number): Handle;

  // --- multi-label classification -----------------------------------------------------------
  /**
   * Mean over rows·channels of the binary cross-entropy of sigmoid(logits) against targets in
   * [0, 1] (Keras binary_crossentropy), in the stable form max(x, 0) − x·t + log(1 + exp(−|x|)).
   * probs = sigmoid(logits).
   */
  sigmoidCrossEntropy(logits: Handle, targets: Handle, p: RowsParams): { loss: number; probs: Handle };
  /** d(loss)/d(logits) = (probs − targets) · scale / (rows·channels). */
  sigmoidCrossEntropyBackward(probs: Handle, targets: Handle, p: RowsParams, scale: number): Handle;
}
