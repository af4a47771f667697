/**
 * Compiled inference on the native (oneDNN) backend, or on the wasm backend when the model's
 * weights live there (fp32 only; the same spec run by wasm-plan.ts):
 *
 *   const net = compileInference(model, { batch: 8 });     // once per model, input shape and batch
 *   const probs = net.run(x);                              // x: [8, 299, 299, 3] NHWC float32
 *   net.dispose();
 *
 * The plan is built once: batch norms folded into the convolutions, ReLUs and residual adds fused
 * as post-ops, primitives created once, activations in the layouts oneDNN picks inside one reused
 * arena (see graph.ts, fuse.ts, compile.ts and native/plan.h). Public tensors stay NHWC float32.
 *
 * Weights: the plan copies (and folds) the model's weights when it is built. Before every run it
 * checks, for each weight it read, that the model still holds the same tensor (not replaced by
 * setData/assign/loadWeights) at the same version (not updated in place by an optimizer); if any
 * changed, it re-reads all weights before running (the primitives stay). A disposed weight is a
 * DisposedError. So a plan always computes with the model's current weights.
 */
import type { Backend } from '../core/backend.js';
import { BackendError, DisposedError, OptionError, ShapeError, shapeToString, XceptionError } from '../core/errors.js';
import { Tensor } from '../core/tensor.js';
import type { NativeBackend } from '../backends/onednn/backend.js';
import type { NativePlan } from '../backends/onednn/binding.js';
import type { Variable } from '../nn/layer.js';
import type { Model } from '../nn/model.js';
import { compileSpec, type CompiledSpec, type CompileSpecOptions, type PlanLayout, type Precision, type WeightRecipe } from './compile.js';
import type { Int8Calibration } from './quant-types.js';
import type { WasmBackend } from '../backends/wasm/backend.js';
import { nativeAccess } from './native-access.js';
import { WasmPlan } from './wasm-plan.js';

export interface CompileInferenceOptions {
  /** Images per run (required): a plan runs exactly this batch. */
  batch: number;
  /**
   * [height, width, channels] (default: the model's input shape). A fully convolutional model
   * can be compiled for another image size; channels must match the model's.
   */
  inputShape?: readonly number[];
  /** Leave out the output layer's softmax (pre-softmax scores, as `forward({ logits: true })`). */
  logits?: boolean;
  /**
   * 'fp32' (default) or 'bf16': activations and weights in bfloat16 inside the plan (oneDNN
   * converts once at the input and output; results agree with fp32 to about 1e-2 only), or
   * 'int8': convolutions in int8 with the scales of `calibration` (see int8-plan.ts).
   */
  precision?: Precision;
  /** Activation scales for precision 'int8' (required then, refused otherwise). */
  calibration?: Int8Calibration;
  /**
   * Activation layout of an fp32 plan (bf16 and int8 plans leave it to oneDNN): 'auto' (default) is
   * 'blocked' — pointwise and depthwise convolutions on oneDNN's jit kernels over channel blocks
   * of 16 — for a network with depthwise convolutions, else 'channels-last' (oneDNN's choice).
   */
  layout?: PlanLayout;
}

export interface CompiledInferenceInfo {
  /** The backend the plan runs on: 'native' (oneDNN) or 'wasm' (the model's weights are on wasm). */
  backend: 'native' | 'wasm';
  batch: number;
  inputShape: number[];
  outputShape: number[];
  precision: Precision;
  /** The activation layout asked of oneDNN ('auto' resolved; bf16 and int8 plans ignore it). */
  layout: Exclude<PlanLayout, 'auto'>;
  /** One line per oneDNN primitive run, in order: what it computes and the implementation oneDNN picked. */
  steps: string[];
  arenaBytes: number;
  weightBytes: number;
  scratchpadBytes: number;
  /** wasm plans: the bytes of all values if none shared memory (arenaBytes is below this by liveness). */
  valueBytes?: number;
  fusions: CompiledSpec['fusions'];
  /** Times the weights were re-read because the model's weights changed. */
  weightRefreshes: number;
  /** Set when oneDNN refused a fused primitive and the plan was rebuilt without fusions: why. */
  unfusedBecause: string | null;
  /** int8 plans: convolution and dense nodes run in int8, of all, and whether this CPU has int8 dot products (VNNI). */
  int8: { nodes: number; of: number; hardware: 'native' | 'emulated' } | null;
}

interface Snapshot {
  variable: Variable;
  tensor: Tensor;
  version: number;
}

export class CompiledInference {
  readonly batch: number;
  readonly inputShape: readonly number[];
  /** Without the batch dimension. */
  readonly outputShape: readonly number[];
  readonly precision: Precision;
  readonly layout: Exclude<PlanLayout, 'auto'>;
  readonly logits: boolean;
  private plan: NativePlan | null;
  /** Set instead of `plan` when the model is on the wasm backend. */
  private readonly wasm: WasmPlan | null = null;
  private readonly backend: NativeBackend | null;
  private recipes: WeightRecipe[];
  private snapshot: Snapshot[];
  private readonly fusions: CompiledSpec['fusions'];
  private refreshes = 0;
  /** Why the plan runs without fusions (oneDNN refused a fused primitive), or null. */
  private unfusedBecause: string | null = null;
  private readonly inputSize: number;
  private readonly outputSize: number;
  private readonly int8Counts: CompiledSpec['int8Convolutions'];
  /** How the spec is made again (int8 plans are rebuilt when the weights change). */
  private readonly specOptions: CompileSpecOptions;

  /** Use compileInference(). */
  constructor(
    private readonly model: Model,
    options: CompileInferenceOptions,
  ) {
    const batch = options.batch;
    if (!Number.isInteger(batch) || batch < 1 || batch > 1 << 20)
      throw new OptionError(`compileInference: batch must be a positive integer, got ${String(batch)}`);
    const inputShape = options.inputShape ? [...options.inputShape] : [...model.inputShape];
    if (inputShape.length !== 3 || !inputShape.every((d) => Number.isInteger(d) && d > 0)) {
      throw new ShapeError(
        `compileInference: inputShape must be [height, width, channels] of positive integers, got ${JSON.stringify(options.inputShape)}`,
      );
    }
    if (model.inputShape.length !== 3)
      throw new ShapeError(`compileInference: model '${model.name}' does not take images (input ${shapeToString(model.inputShape)})`);
    if (inputShape[2] !== model.inputShape[2]) {
      throw new ShapeError(
        `compileInference: model '${model.name}' takes ${model.inputShape[2]} channels, inputShape has ${inputShape[2]}`,
      );
    }
    const precision = options.precision ?? 'fp32';
    if (precision !== 'fp32' && precision !== 'bf16' && precision !== 'int8')
      throw new OptionError(`compileInference: precision must be 'fp32', 'bf16' or 'int8', got ${JSON.stringify(precision)}`);
    const layout = options.layout ?? 'auto';
    if (layout !== 'auto' && layout !== 'channels-last' && layout !== 'blocked') {
      throw new OptionError(`compileInference: layout must be 'auto', 'channels-last' or 'blocked', got ${JSON.stringify(layout)}`);
    }
    const logits = options.logits ?? false;
    if (typeof logits !== 'boolean') throw new OptionError('compileInference: logits must be true or false');
    const wasmBackend = wasmBackendOf(model);
    if (wasmBackend && precision !== 'fp32') {
      throw new OptionError(
        `compileInference: precision '${precision}' is compiled on the native backend only; model '${model.name}' is on the wasm backend (fp32 there)`,
      );
    }
    this.backend = wasmBackend ? null : nativeAccess().backend();
    const fuse = (options as { fuse?: CompileSpecOptions['fuse'] }).fuse;
    const calibration = options.calibration;
    this.specOptions = { batch, inputShape, logits, precision, layout, ...(fuse ? { fuse } : {}), ...(calibration ? { calibration } : {}) };
    let compiled = compileSpec(model, this.specOptions);
    // Taken before the weights are read: a change from here on is caught by the next run.
    const snapshot = this.takeSnapshot(compiled.variables);
    if (wasmBackend) {
      this.plan = null;
      this.wasm = new WasmPlan(wasmBackend, compiled, this.readWeightsOf(compiled.recipes));
    } else {
      const built = this.createNativePlan(compiled);
      this.plan = built.plan;
      compiled = built.compiled;
    }
    this.batch = batch;
    this.inputShape = Object.freeze(inputShape);
    this.outputShape = Object.freeze([...compiled.outputShape]);
    this.precision = precision;
    // The wasm plan keeps activations NHWC whatever the spec's layout says.
    this.layout = wasmBackend ? 'channels-last' : compiled.layout;
    this.logits = logits;
    this.recipes = compiled.recipes;
    this.fusions = compiled.fusions;
    this.int8Counts = compiled.int8Convolutions;
    this.inputSize = batch * inputShape.reduce((a, b) => a * b, 1);
    this.outputSize = batch * compiled.outputShape.reduce((a, b) => a * b, 1);
    this.snapshot = snapshot;
    const info = this.wasm ?? this.native().planInfo(this.livePlan());
    if (info.inputSize !== this.inputSize || info.outputSize !== this.outputSize) {
      this.dispose();
      throw new XceptionError(
        `compileInference: internal size mismatch (plan ${info.inputSize}→${info.outputSize}, expected ${this.inputSize}→${this.outputSize})`,
      );
    }
  }

  /** The native plan, retried unfused when oneDNN refuses a fused primitive (not for int8 or an explicit `fuse`). */
  private createNativePlan(compiled: CompiledSpec): { plan: NativePlan; compiled: CompiledSpec } {
    const o = this.specOptions;
    try {
      return { plan: this.native().createPlan(compiled.spec, this.readWeightsOf(compiled.recipes)), compiled };
    } catch (e) {
      // oneDNN may refuse a fused primitive that this CPU or build has no implementation for:
      // correctness first, so try once more with every layer as its own primitive.
      // (Not for int8: the calibration names the fused graph's values.)
      if (!(e instanceof BackendError) || o.fuse || o.precision === 'int8') throw e;
      const unfused = compileSpec(this.model, { ...o, fuse: { batchNorm: false, sum: false, eltwise: false } });
      const plan = this.native().createPlan(unfused.spec, this.readWeightsOf(unfused.recipes));
      this.unfusedBecause = e.message;
      return { plan, compiled: unfused };
    }
  }

  get disposed(): boolean {
    return this.wasm ? this.wasm.freed : this.plan === null;
  }

  private native(): NativeBackend {
    if (!this.backend) throw new XceptionError('compileInference: internal error: a wasm plan has no native backend');
    return this.backend;
  }

  /** Runs the network on x [batch, ...inputShape] (any backend); the result is on x's backend. */
  run(x: Tensor): Tensor {
    this.checkLive();
    if (!(x instanceof Tensor)) throw new OptionError('CompiledInference.run: x must be a Tensor');
    const want = [this.batch, ...this.inputShape];
    if (x.rank !== 4 || x.shape.some((d, i) => d !== want[i])) {
      throw new ShapeError(
        `compiled '${this.model.name}' takes ${shapeToString(want)}, got ${shapeToString(x.shape)}` +
          (x.rank === 4 && x.shape[0] !== this.batch ? ` (compiled for batch ${this.batch}; compile another plan for another batch)` : ''),
      );
    }
    if (x.dtype !== 'float32') throw new OptionError(`compiled '${this.model.name}' takes float32, got ${x.dtype}`);
    this.syncWeights(); // (may build an int8 plan again: the plan is read after it)
    const outShape = [this.batch, ...this.outputShape];
    if (this.wasm && x.backend === (this.wasm.backend as Backend)) {
      return new Tensor(x.backend, this.wasm.runHandle(x.handle), outShape);
    }
    if (this.backend && x.backend === (this.backend as Backend)) {
      return new Tensor(this.backend, this.backend.runPlan(this.livePlan(), x.handle, this.inputSize, this.outputSize), outShape);
    }
    const y = this.runData(x.data());
    return new Tensor(x.backend, x.backend.upload(y), outShape);
  }

  /** Runs on plain NHWC float32 values (batch × inputShape); returns the output values. */
  runData(x: Float32Array): Float32Array {
    this.checkLive();
    if (!(x instanceof Float32Array) || x.length !== this.inputSize) {
      throw new ShapeError(
        `compiled '${this.model.name}' takes ${this.inputSize} values (${shapeToString([this.batch, ...this.inputShape])}), got ${x instanceof Float32Array ? x.length : typeof x}`,
      );
    }
    this.syncWeights();
    if (this.wasm) return this.wasm.runData(x);
    const backend = this.native();
    const input = backend.upload(x);
    try {
      const out = backend.runPlan(this.livePlan(), input, this.inputSize, this.outputSize);
      try {
        return backend.download(out, this.outputSize, 'float32') as Float32Array;
      } finally {
        backend.dispose(out);
      }
    } finally {
      backend.dispose(input);
    }
  }

  /** Runs once on x, timing every step (slower than run: it waits after each primitive). */
  profile(x: Tensor): Array<{ step: string; seconds: number }> {
    this.checkLive();
    const want = [this.batch, ...this.inputShape];
    if (!(x instanceof Tensor) || x.rank !== 4 || x.shape.some((d, i) => d !== want[i])) {
      throw new ShapeError(
        `compiled '${this.model.name}' takes ${shapeToString(want)}, got ${x instanceof Tensor ? shapeToString(x.shape) : typeof x}`,
      );
    }
    this.syncWeights();
    const backend: NativeBackend | WasmBackend = this.wasm?.backend ?? this.native();
    const own = x.backend === (backend as Backend) ? null : backend.upload(x.data());
    try {
      if (this.wasm) return this.wasm.profile(own ?? x.handle);
      const seconds = this.native().profilePlan(this.livePlan(), own ?? x.handle, this.inputSize, this.outputSize);
      const steps = this.native().planInfo(this.livePlan()).steps;
      return steps.map((step, i) => ({ step, seconds: seconds[i]! }));
    } finally {
      if (own) backend.dispose(own);
    }
  }

  /** Re-reads (and re-folds) the model's weights now. run() does this by itself when they changed. */
  refreshWeights(): void {
    this.checkLive();
    this.snapshot = this.takeSnapshot(this.snapshot.map((s) => s.variable));
    if (this.wasm) this.wasm.setWeights(this.readWeights());
    else this.refreshNativeWeights(this.livePlan(), this.native());
    this.refreshes++;
  }

  private refreshNativeWeights(plan: NativePlan, backend: NativeBackend): void {
    if (this.precision === 'int8') {
      // Its kernels are quantized with scales built into the primitives: a new plan (same calibration).
      const compiled = compileSpec(this.model, this.specOptions);
      const fresh = backend.createPlan(compiled.spec, this.readWeightsOf(compiled.recipes));
      this.plan = fresh;
      this.recipes = compiled.recipes;
      backend.freePlan(plan);
    } else {
      backend.setPlanWeights(plan, this.readWeights());
    }
  }

  info(): CompiledInferenceInfo {
    this.checkLive();
    const i = this.wasm ? this.wasm.info() : this.native().planInfo(this.livePlan());
    return {
      backend: this.wasm ? 'wasm' : 'native',
      batch: this.batch,
      inputShape: [...this.inputShape],
      outputShape: [...this.outputShape],
      precision: this.precision,
      layout: this.layout,
      steps: i.steps,
      arenaBytes: i.arenaBytes,
      weightBytes: i.weightBytes,
      scratchpadBytes: i.scratchpadBytes,
      ...('valueBytes' in i ? { valueBytes: i.valueBytes } : {}),
      fusions: { ...this.fusions },
      weightRefreshes: this.refreshes,
      unfusedBecause: this.unfusedBecause,
      int8: this.int8Counts ? { nodes: this.int8Counts.int8, of: this.int8Counts.total, hardware: nativeAccess().int8Hardware() } : null,
    };
  }

  /** Frees the plan's native memory now. Twice is harmless; run() afterwards is a DisposedError. */
  dispose(): void {
    this.wasm?.free();
    if (!this.plan) return;
    const plan = this.plan;
    this.plan = null;
    this.native().freePlan(plan);
  }

  private checkLive(): void {
    if (this.disposed) throw new DisposedError(`compiled inference of model '${this.model.name}' was used after dispose()`);
  }

  private livePlan(): NativePlan {
    if (!this.plan) throw new DisposedError(`compiled inference of model '${this.model.name}' was used after dispose()`);
    return this.plan;
  }

  private takeSnapshot(vars: Variable[]): Snapshot[] {
    return vars.map((variable) => {
      const tensor = variable.value;
      if (tensor.isDisposed)
        throw new DisposedError(`compiled '${this.model.name}': weight ${variable.name} was disposed (model disposed?)`);
      return { variable, tensor, version: tensor.version };
    });
  }

  private readWeights(): Float32Array[] {
    return this.readWeightsOf(this.recipes);
  }

  private readWeightsOf(recipes: WeightRecipe[]): Float32Array[] {
    return recipes.map((r) => r());
  }

  /** The rule: same tensor at the same version for every weight, or re-read them all. */
  private syncWeights(): void {
    let stale = false;
    for (const s of this.snapshot) {
      const t = s.variable.value;
      if (t.isDisposed) throw new DisposedError(`compiled '${this.model.name}': weight ${s.variable.name} was disposed (model disposed?)`);
      if (t !== s.tensor || t.version !== s.version) stale = true;
    }
    if (stale) this.refreshWeights();
  }
}

/** The wasm backend the model's weights live on, or null (then plans run on the native backend). */
function wasmBackendOf(model: Model): WasmBackend | null {
  const backend = model.weights[0]?.value.backend;
  return backend?.name === 'wasm' ? (backend as WasmBackend) : null;
}

/**
 * Compiles `model` for inference: on the wasm backend when its weights are there (fp32), else on
 * the native backend (BackendError if it is unavailable).
 */
export function compileInference(model: Model, options: CompileInferenceOptions): CompiledInference {
  if (options === null || typeof options !== 'object') throw new OptionError('compileInference: options { batch } are required');
  // `fuse` ({ batchNorm, sum, eltwise }: false runs those layers unfused) is for tests and comparisons.
  const known = ['batch', 'inputShape', 'logits', 'precision', 'layout', 'calibration', 'fuse'];
  for (const k of Object.keys(options))
    if (!known.includes(k)) throw new OptionError(`compileInference: unknown option '${k}' (known: ${known.join(', ')})`);
  return new CompiledInference(model, options);
}
