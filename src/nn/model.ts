/**
 * A functional model: a graph of layers from one input to one output, as Keras builds its
 * `applications`. The layer list, its order and the weight order follow Keras exactly, because
 * Keras weight files are read in that order.
 */
import { isGradEnabled } from '../core/engine.js';
import { OptionError, ShapeError, shapeToString } from '../core/errors.js';
import { Random } from '../core/random.js';
import type { Tensor } from '../core/tensor.js';
import type { CallContext, Layer, Shape, SymbolicTensor, Variable } from './layer.js';
import { BatchNormalization } from './layers/normalization.js';

export interface ForwardOptions {
  /** Batch statistics and dropout (default false). */
  training?: boolean;
  /** Return the output layer's pre-softmax values (for training with a cross-entropy loss). */
  logits?: boolean;
  /** Dropout masks come from here (default: the model's own seeded generator). */
  rng?: Random;
  /**
   * Run each batch norm whose only consumer is a ReLU activation as one fused kernel (default
   * true). Same numbers either way (up to float rounding); false runs every layer as written.
   */
  fuse?: boolean;
  /**
   * While training from scratch: the training steps taken so far. Batch norm then moves its
   * statistics with momentum min(momentum, (1 + step) / (10 + step)) (TensorFlow's
   * ExponentialMovingAverage num_updates rule), so they take the data's scale within a few
   * steps instead of keeping much of their starting variance of 1. Keras's depthwise
   * initialization gives the wide layers' outputs variances near 1e-3: even 1% of that start
   * left evaluation at chance (every image one class) after a 10-step run. From step 890 on the
   * rule changes nothing.
   */
  statisticsStep?: number;
}

/** A layer that can apply ReLU to its own output in the same kernel (BatchNormalization). */
interface ReluFusable extends Layer {
  callWithRelu(inputs: readonly Tensor[], ctx: CallContext): Tensor;
}

function isReluFusable(l: Layer): l is ReluFusable {
  return typeof (l as Partial<ReluFusable>).callWithRelu === 'function';
}

function isRelu(l: Layer): boolean {
  return l.className === 'Activation' && (l as Layer & { activation?: string }).activation === 'relu';
}

export interface SummaryRow {
  name: string;
  type: string;
  /** Without the batch dimension. */
  outputShape: number[];
  params: number;
  connectedTo: string[];
}

export interface ModelSummary {
  name: string;
  totalParams: number;
  trainableParams: number;
  nonTrainableParams: number;
  layers: SummaryRow[];
}

export class Model {
  readonly name: string;
  readonly input: SymbolicTensor;
  readonly output: SymbolicTensor;
  /** Layers in execution order (every input before its consumers). */
  readonly executionOrder: readonly Layer[];
  /** Layers in Keras's `model.layers` order (what summaries and weight files use). */
  readonly layers: readonly Layer[];
  /** Free-form description of how the model was built (options), for checkpoints and reports. */
  config: Record<string, unknown> = {};
  rng: Random;
  private readonly consumers: Map<Layer, number>;
  /** Batch norms run fused with the ReLU that is their only consumer, and those ReLUs. */
  private readonly fusedProducers = new Set<Layer>();
  private readonly fusedRelus = new Set<Layer>();

  constructor(opts: { inputs: SymbolicTensor; outputs: SymbolicTensor; name?: string; seed?: number }) {
    this.name = opts.name ?? 'model';
    this.input = opts.inputs;
    this.output = opts.outputs;
    this.rng = new Random(opts.seed ?? 0);
    const reachable = collect(this.output);
    if (!reachable.has(this.input.layer)) throw new OptionError(`model '${this.name}': the output does not depend on the input`);
    for (const l of reachable) {
      if (l.inbound && l.inbound.length === 0 && l !== this.input.layer) {
        throw new OptionError(`model '${this.name}': layer '${l.name}' has no input and is not the model input`);
      }
    }
    this.executionOrder = [...reachable].sort((a, b) => a.output!.id - b.output!.id);
    this.layers = kerasLayerOrder(this.output);
    const names = new Set<string>();
    for (const l of this.layers) {
      if (names.has(l.name)) throw new OptionError(`model '${this.name}': two layers are named '${l.name}'`);
      names.add(l.name);
    }
    this.consumers = new Map();
    for (const l of this.executionOrder)
      for (const s of l.inbound ?? []) this.consumers.set(s.layer, (this.consumers.get(s.layer) ?? 0) + 1);
    for (const l of this.executionOrder) {
      const src = l.inbound?.length === 1 ? l.inbound[0]!.layer : undefined;
      if (src && isRelu(l) && isReluFusable(src) && this.consumers.get(src) === 1 && src !== this.output.layer) {
        this.fusedProducers.add(src);
        this.fusedRelus.add(l);
      }
    }
  }

  get inputShape(): Shape {
    return this.input.shape;
  }

  get outputShape(): Shape {
    return this.output.shape;
  }

  /** Runs the network on x [batch, ...inputShape]. */
  forward(x: Tensor, opts: ForwardOptions = {}): Tensor {
    this.checkInput(x);
    const ctx: CallContext = {
      training: opts.training ?? false,
      rng: opts.rng ?? this.rng,
      logits: false,
      statisticsStep: opts.statisticsStep,
    };
    // Without autograd, intermediates are freed as soon as their last consumer has run.
    const freeEarly = !isGradEnabled();
    const fuse = opts.fuse ?? true;
    const values = new Map<Layer, Tensor>();
    const pending = new Map(this.consumers);
    const refs = new Map<Tensor, number>();
    for (const layer of this.executionOrder) {
      let out: Tensor;
      if (layer === this.input.layer) {
        out = x;
      } else {
        const inputs = layer.inbound!.map((s) => values.get(s.layer)!);
        ctx.logits = (opts.logits ?? false) && layer === this.output.layer;
        if (fuse && this.fusedProducers.has(layer)) out = (layer as ReluFusable).callWithRelu(inputs, ctx);
        else if (fuse && this.fusedRelus.has(layer))
          out = inputs[0]!; // its producer applied it
        else out = layer.call(inputs, ctx);
        if (freeEarly) {
          for (const s of layer.inbound!) {
            const left = pending.get(s.layer)! - 1;
            pending.set(s.layer, left);
            if (left === 0) {
              const t = values.get(s.layer)!;
              values.delete(s.layer);
              const r = (refs.get(t) ?? 1) - 1;
              refs.set(t, r);
              if (r === 0 && t !== x && t !== out) t.dispose();
            }
          }
        }
      }
      values.set(layer, out);
      refs.set(out, (refs.get(out) ?? 0) + 1);
    }
    return values.get(this.output.layer)!;
  }

  checkInput(x: Tensor): void {
    const want = this.input.shape;
    if (x.rank !== want.length + 1 || want.some((d, i) => x.shape[i + 1] !== d)) {
      throw new ShapeError(`model '${this.name}' expects input [batch, ${want.join(', ')}], got ${shapeToString(x.shape)}`);
    }
    if (x.shape[0]! < 1) throw new ShapeError(`model '${this.name}': empty batch`);
  }

  getLayer(name: string): Layer {
    const l = this.layers.find((x) => x.name === name);
    if (!l) throw new OptionError(`model '${this.name}' has no layer '${name}'`);
    return l;
  }

  /** All weights, layer by layer in Keras order, each layer's weights in Keras order. */
  get weights(): Variable[] {
    return this.layers.flatMap((l) => l.weights);
  }

  get trainableWeights(): Variable[] {
    return this.weights.filter((w) => w.trainable);
  }

  get nonTrainableWeights(): Variable[] {
    return this.weights.filter((w) => !w.trainable);
  }

  /** Layers that own weights, in Keras order (the order Keras H5 files are read in). */
  get layersWithWeights(): Layer[] {
    return this.layers.filter((l) => l.weights.length > 0);
  }

  countParams(): number {
    return this.weights.reduce((a, w) => a + w.size, 0);
  }

  /** Freezes every layer up to and including `lastFrozen` (or all when omitted). */
  freeze(lastFrozen?: string): void {
    if (lastFrozen !== undefined) this.getLayer(lastFrozen);
    for (const l of this.layers) {
      l.trainable = false;
      if (l.name === lastFrozen) break;
    }
  }

  unfreeze(): void {
    for (const l of this.layers) l.trainable = true;
  }

  /**
   * Runs every batch normalization in inference mode (moving statistics used and kept) even
   * while training, or back in the usual mode; whether its gamma and beta train is still up to
   * freeze/unfreeze. This is the Keras fine-tuning recipe's `base(x, training=False)`.
   */
  setBatchNormInference(on: boolean): void {
    for (const l of this.layers) if (l instanceof BatchNormalization) l.inferenceMode = on;
  }

  summary(): ModelSummary {
    const rows = this.layers.map((l) => ({
      name: l.name,
      type: l.className,
      outputShape: [...l.output!.shape],
      params: l.countParams(),
      connectedTo: (l.inbound ?? []).map((s) => s.layer.name),
    }));
    const total = this.countParams();
    const trainable = this.trainableWeights.reduce((a, w) => a + w.size, 0);
    return { name: this.name, totalParams: total, trainableParams: trainable, nonTrainableParams: total - trainable, layers: rows };
  }

  /** A Keras-like table. */
  summaryText(): string {
    const s = this.summary();
    const fmt = (n: number) => n.toLocaleString('en-US');
    const header = ['Layer (type)', 'Output Shape', 'Param #', 'Connected to'];
    const body = s.layers.map((r) => [
      `${r.name} (${r.type})`,
      `(None, ${r.outputShape.join(', ')})`,
      fmt(r.params),
      r.connectedTo.join(', '),
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
    const line = (cells: string[]) =>
      cells
        .map((c, i) => (i === 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd();
    const rule = (ch: string) => ch.repeat(widths.reduce((a, w) => a + w + 2, -2));
    return [
      `Model: "${s.name}"`,
      rule('_'),
      line(header),
      rule('='),
      ...body.map(line),
      rule('='),
      `Total params: ${fmt(s.totalParams)}`,
      `Trainable params: ${fmt(s.trainableParams)}`,
      `Non-trainable params: ${fmt(s.nonTrainableParams)}`,
      rule('_'),
    ].join('\n');
  }

  /** Frees every weight's memory (and whatever was registered with onDispose). The model cannot run afterwards. */
  dispose(): void {
    for (const fn of this.disposeListeners.splice(0)) fn();
    for (const w of this.weights) w.value.dispose();
  }

  /** Runs `fn` when the model is disposed (e.g. to free compiled plans made from its weights). */
  onDispose(fn: () => void): void {
    this.disposeListeners.push(fn);
  }

  private readonly disposeListeners: Array<() => void> = [];
}

function collect(output: SymbolicTensor): Set<Layer> {
  const seen = new Set<Layer>();
  const stack = [output];
  while (stack.length) {
    const s = stack.pop()!;
    if (seen.has(s.layer)) continue;
    seen.add(s.layer);
    stack.push(...s.inputs);
  }
  return seen;
}

/**
 * Keras's `Functional.layers` order: depth from the output (a layer is deeper than everything it
 * feeds), deepest first; ties broken by the order a depth-first walk from the output first meets
 * each layer, inputs in call order. This is why Keras lists the auto-named residual conv of each
 * Xception block after the block's `sepconv2_bn`.
 */
export function kerasLayerOrder(output: SymbolicTensor): Layer[] {
  const firstSeen = new Map<Layer, number>();
  const postOrder: Layer[] = [];
  const finished = new Set<Layer>();
  const visit = (s: SymbolicTensor): void => {
    const layer = s.layer;
    if (finished.has(layer)) return;
    if (!firstSeen.has(layer)) firstSeen.set(layer, firstSeen.size);
    for (const i of s.inputs) visit(i);
    finished.add(layer);
    postOrder.push(layer);
  };
  visit(output);
  const depth = new Map<Layer, number>();
  for (let i = postOrder.length - 1; i >= 0; i--) {
    const layer = postOrder[i]!;
    const d = depth.get(layer) ?? 0;
    depth.set(layer, d);
    for (const inp of layer.inbound ?? []) {
      depth.set(inp.layer, Math.max(depth.get(inp.layer) ?? 0, d + 1));
    }
  }
  return [...postOrder].sort((a, b) => depth.get(b)! - depth.get(a)! || firstSeen.get(a)! - firstSeen.get(b)!);
}
