/**
 * The inference graph (src/infer/graph.ts, fuse.ts): how layers lower, where the logits rule
 * applies, what fuses, and how each consumer refuses a layer type without a lowering.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceBackend } from '../../src/backends/index.js';
import { noGrad } from '../../src/core/engine.js';
import { Random } from '../../src/core/random.js';
import type { Tensor } from '../../src/core/tensor.js';
import { CompileError, compileSpec } from '../../src/infer/compile.js';
import { fuseGraph } from '../../src/infer/fuse.js';
import { lowerModel, LoweringError, type ConvNode, type GraphNode } from '../../src/infer/graph.js';
import { exportOnnx } from '../../src/io/onnx-model.js';
import { OnnxGraphError } from '../../src/io/errors.js';
import { Layer, type Shape, type SymbolicTensor } from '../../src/nn/layer.js';
import { Conv2D, SeparableConv2D } from '../../src/nn/layers/convolutional.js';
import { Activation, Dense, Dropout, InputLayer } from '../../src/nn/layers/core.js';
import { Add } from '../../src/nn/layers/merge.js';
import { BatchNormalization } from '../../src/nn/layers/normalization.js';
import { GlobalAveragePooling2D } from '../../src/nn/layers/pooling.js';
import { Model } from '../../src/nn/model.js';

const ctx = () => ({ rng: new Random(3), backend: referenceBackend });
const ops = (nodes: GraphNode[]) => nodes.map((n) => n.op);

function build(shape: number[], body: (x: SymbolicTensor, c: ReturnType<typeof ctx>) => SymbolicTensor): Model {
  const c = ctx();
  return noGrad(() => {
    const input = new InputLayer({ shape, name: 'img' }).apply([], c);
    return new Model({ inputs: input, outputs: body(input, c), name: 'm' });
  });
}

test('a separable convolution lowers to depthwise + pointwise convolutions; dropout and linear activations lower to nothing', () => {
  const m = build([8, 8, 4], (x, c) => {
    x = new SeparableConv2D({
      filters: 6,
      kernelSize: 3,
      strides: 2,
      padding: 'same',
      intermediateActivation: 'relu',
      activation: 'elu',
      name: 'sep',
    }).apply(x, c);
    x = new Dropout(0.5, { name: 'drop' }).apply(x, c);
    return new Activation('linear', { name: 'lin' }).apply(x, c);
  });
  const g = lowerModel(m, { inputShape: [8, 8, 4], logits: false });
  assert.deepEqual(ops(g.nodes), ['input', 'conv', 'conv']);
  const [dw, pw] = g.nodes.slice(1) as ConvNode[];
  assert.deepEqual([dw!.role, dw!.geometry.groups, dw!.kernelShape, dw!.shape], ['depthwise', 4, [3, 3, 1, 4], [4, 4, 4]]);
  assert.deepEqual([dw!.geometry.padT, dw!.geometry.padB, dw!.geometry.sH], [0, 1, 2]);
  assert.deepEqual([pw!.role, pw!.geometry.groups, pw!.kernelShape, pw!.inputs[0]], ['pointwise', 1, [1, 1, 4, 6], dw]);
  assert.deepEqual(dw!.posts, [{ kind: 'eltwise', alg: 'relu', alpha: 0 }]);
  assert.deepEqual(pw!.posts, [{ kind: 'eltwise', alg: 'elu', alpha: 1 }]);
  assert.equal(g.output, pw);
  m.dispose();
});

test("the logits rule: only the output layer's softmax is left out, and only with logits", () => {
  const m = build([4, 4, 2], (x, c) => {
    x = new Activation('softmax', { name: 'inner_softmax' }).apply(x, c);
    x = new GlobalAveragePooling2D({ name: 'gap' }).apply(x, c);
    return new Dense({ units: 3, activation: 'softmax', name: 'out' }).apply(x, c);
  });
  const probs = lowerModel(m, { inputShape: [4, 4, 2], logits: false });
  assert.deepEqual(ops(probs.nodes), ['input', 'softmax', 'gpool', 'dense', 'softmax']);
  const logits = lowerModel(m, { inputShape: [4, 4, 2], logits: true });
  assert.deepEqual(ops(logits.nodes), ['input', 'softmax', 'gpool', 'dense']);
  assert.equal(logits.output.op, 'dense');
  m.dispose();
});

test('fusions: BN folds into its conv, the add becomes a sum post-op, the ReLU an eltwise post-op; off keeps them as nodes', () => {
  const body = (x: SymbolicTensor, c: ReturnType<typeof ctx>) => {
    const y = new Conv2D({ filters: 4, kernelSize: 1, name: 'shortcut' }).apply(x, c);
    const h = new Conv2D({ filters: 4, kernelSize: 3, padding: 'same', name: 'conv' }).apply(x, c);
    const z = new BatchNormalization({ name: 'bn' }).apply(h, c);
    return new GlobalAveragePooling2D({ name: 'gap' }).apply(
      new Activation('relu', { name: 'relu' }).apply(new Add({ name: 'add' }).apply([z, y], c), c),
      c,
    );
  };
  const m = build([6, 6, 3], body);
  const g = lowerModel(m, { inputShape: [6, 6, 3], logits: false });
  assert.deepEqual(ops(g.nodes), ['input', 'conv', 'conv', 'bn', 'add', 'eltwise', 'gpool']);
  const counts = fuseGraph(g);
  assert.deepEqual(counts, { foldedBatchNorms: 1, sumPostOps: 1, eltwisePostOps: 1, standaloneBatchNorms: 0 });
  assert.deepEqual(ops(g.nodes), ['input', 'conv', 'conv', 'gpool']);
  const fused = g.nodes[2] as ConvNode;
  assert.deepEqual(fused.layers, ['conv', 'bn', 'add', 'relu']);
  assert.deepEqual(
    fused.posts.map((p) => p.kind),
    ['sum', 'eltwise'],
  );
  assert.equal(fused.sumInto, g.nodes[1]);
  assert.equal(fused.affine.length, 1);
  const unfused = lowerModel(m, { inputShape: [6, 6, 3], logits: false });
  assert.deepEqual(fuseGraph(unfused, { batchNorm: false, sum: false, eltwise: false }), {
    foldedBatchNorms: 0,
    sumPostOps: 0,
    eltwisePostOps: 0,
    standaloneBatchNorms: 1,
  });
  assert.equal(unfused.nodes.length, 7);
  m.dispose();
});

/** A layer type the lowering does not know. */
class Doubling extends Layer {
  readonly className = 'Doubling';
  computeOutputShape(inputShapes: readonly Shape[]): Shape {
    return inputShapes[0]!;
  }
  call([x]: readonly Tensor[]): Tensor {
    return x!;
  }
}

test('a layer type without a lowering: LoweringError, CompileError for plans, OnnxGraphError for export', () => {
  const m = build([4, 4, 2], (x, c) =>
    new Doubling({ name: 'twice' }, 'doubling').apply(new Conv2D({ filters: 2, kernelSize: 1 }).apply(x, c), c),
  );
  assert.throws(
    () => lowerModel(m, { inputShape: [4, 4, 2], logits: false }),
    (e: unknown) => e instanceof LoweringError && e.layer.name === 'twice',
  );
  assert.throws(
    () => compileSpec(m, { batch: 1, inputShape: [4, 4, 2], logits: false, precision: 'fp32' }),
    (e: unknown) => e instanceof CompileError && /'twice' \(Doubling\) cannot be compiled/.test(e.message),
  );
  assert.throws(
    () => exportOnnx(m),
    (e: unknown) => e instanceof OnnxGraphError && /'twice' of type Doubling is not supported/.test(e.message),
  );
  m.dispose();
});
