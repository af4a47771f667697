/**
 * ONNX export: a hand-written encoder for the few ONNX messages a CNN needs (ModelProto,
 * GraphProto, NodeProto, TensorProto, ValueInfoProto, AttributeProto), field numbers from
 * onnx/onnx.proto, and a small graph builder that checks names as the graph is built.
 *
 * Layouts. Keras stores tensors NHWC and conv kernels HWIO; ONNX's Conv works on NCHW with OIHW
 * kernels:
 *   Conv2D kernel   Keras [kh, kw, in, out]  -> ONNX W[out, in, kh, kw]   (W[o,i,y,x] = K[y,x,i,o])
 *   Depthwise       Keras [kh, kw, C, m]     -> ONNX W[C·m, 1, kh, kw] with group = C
 *                   (W[c·m+j, 0, y, x] = K[y,x,c,j]: ONNX splits output channels into C
 *                    contiguous groups of m, each seeing one input channel)
 *   Pointwise       Keras [1, 1, in, out]    -> ONNX W[out, in, 1, 1] (the Conv2D rule)
 *   Dense           Keras [in, out]          -> Gemm(X, B = kernel, C = bias) with transB = 0
 * An NHWC graph input becomes NCHW with Transpose(perm = [0, 3, 1, 2]).
 *
 * TensorFlow/Keras 'same' padding with stride s: out = ceil(in / s), total padding
 * max((out − 1)·s + (k − 1)·d + 1 − in, 0), the smaller half at the start and the extra pixel at
 * the END (ONNX `pads` = [top, left, bottom, right] may be asymmetric; auto_pad SAME_UPPER means
 * the same thing but explicit pads are clearer). Max pooling pads with −inf in both frameworks.
 */
import { OnnxGraphError } from './errors.js';
import { ProtoWriter } from './protobuf.js';

const IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** TensorProto.DataType values used here. */
export const OnnxDataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7 } as const;
export type OnnxElemType = 'float' | 'int64' | 'int8' | 'uint8' | 'int32';
const ELEM_CODE: Record<OnnxElemType, number> = {
  float: OnnxDataType.FLOAT,
  int64: OnnxDataType.INT64,
  int8: OnnxDataType.INT8,
  uint8: OnnxDataType.UINT8,
  int32: OnnxDataType.INT32,
};

/** AttributeProto.AttributeType. */
const AttrType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

/** An attribute value with its ONNX type made explicit. */
export type OnnxAttribute =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'ints'; value: number[] }
  | { kind: 'floats'; value: number[] }
  | { kind: 'string'; value: string }
  | { kind: 'tensor'; value: OnnxTensor };

/**
 * Attribute values: a plain integer becomes INT, a non-integer number FLOAT, an array of integers
 * INTS, other arrays FLOATS, a string STRING. Use `attr.float(1)` where a float happens to be whole
 * (e.g. Gemm alpha = 1) and `attr.floats([...])` likewise.
 */
export type OnnxAttributeValue = number | number[] | string | OnnxAttribute;

export const attr = {
  int: (value: number): OnnxAttribute => ({ kind: 'int', value }),
  float: (value: number): OnnxAttribute => ({ kind: 'float', value }),
  ints: (value: number[]): OnnxAttribute => ({ kind: 'ints', value }),
  floats: (value: number[]): OnnxAttribute => ({ kind: 'floats', value }),
  string: (value: string): OnnxAttribute => ({ kind: 'string', value }),
  tensor: (value: OnnxTensor): OnnxAttribute => ({ kind: 'tensor', value }),
};

export interface OnnxTensor {
  name: string;
  shape: number[];
  elemType: OnnxElemType;
  /** float32 data, int64 as bigint, or the quantized types' integers (int8, uint8, int32). */
  data: Float32Array | BigInt64Array | Int8Array | Uint8Array | Int32Array;
}

/** A dimension: a fixed size, or a symbolic name (e.g. 'batch') for a dynamic one. */
export type OnnxDim = number | string;

interface ValueInfo {
  name: string;
  elemType: OnnxElemType;
  shape: OnnxDim[] | null;
}

interface NodeSpec {
  opType: string;
  inputs: string[];
  outputs: string[];
  attrs: [string, OnnxAttribute][];
  name: string;
  domain: string;
}

export interface OnnxModelOptions {
  /** Default-domain opset (default 13; 13 has per-axis Softmax and the current BatchNormalization). */
  opset?: number;
  /** ModelProto.ir_version (default 8, the IR of ONNX 1.10–1.12, read by every runtime since 2021). */
  irVersion?: number;
  producerName?: string;
  producerVersion?: string;
  docString?: string;
}

export class OnnxGraphBuilder {
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private readonly initializers: OnnxTensor[] = [];
  private readonly nodes: NodeSpec[] = [];
  /** Every tensor name defined so far (graph inputs, initializers, node outputs). */
  private readonly defined = new Set<string>();
  private readonly nodeNames = new Set<string>();

  constructor(
    readonly graphName = 'graph',
    private readonly options: OnnxModelOptions = {},
  ) {}

  /** Declares a graph input. Use a string for a dynamic dimension (e.g. ['batch', 299, 299, 3]). */
  addInput(name: string, shape: OnnxDim[] | null, elemType: OnnxElemType = 'float'): this {
    this.define(name, 'input');
    checkDims(name, shape);
    this.inputs.push({ name, elemType, shape: shape ? [...shape] : null });
    return this;
  }

  /** Declares a graph output; some node must produce it by the time toBytes() is called. */
  addOutput(name: string, shape: OnnxDim[] | null, elemType: OnnxElemType = 'float'): this {
    checkName(name);
    if (this.outputs.some((o) => o.name === name)) throw new OnnxGraphError(`graph output "${name}" declared twice`);
    checkDims(name, shape);
    this.outputs.push({ name, elemType, shape: shape ? [...shape] : null });
    return this;
  }

  /** A constant float32 tensor (weights). `data.length` must equal the product of `shape`; it is read at toBytes(). */
  addInitializer(name: string, shape: number[], data: Float32Array): this {
    checkTensor(name, shape, data.length);
    this.define(name, 'initializer');
    this.initializers.push({ name, shape: [...shape], elemType: 'float', data });
    return this;
  }

  /** A constant integer tensor of a quantized type (QDQ weights, zero points, int32 biases). */
  addIntInitializer(name: string, shape: number[], data: Int8Array | Uint8Array | Int32Array): this {
    checkTensor(name, shape, data.length);
    this.define(name, 'initializer');
    const elemType = data instanceof Int8Array ? 'int8' : data instanceof Uint8Array ? 'uint8' : 'int32';
    this.initializers.push({ name, shape: [...shape], elemType, data });
    return this;
  }

  /** A constant int64 tensor (shapes for Reshape, axes, …). */
  addInt64Initializer(name: string, shape: number[], values: readonly (number | bigint)[]): this {
    checkTensor(name, shape, values.length);
    this.define(name, 'initializer');
    this.initializers.push({ name, shape: [...shape], elemType: 'int64', data: BigInt64Array.from(values, (v) => BigInt(v)) });
    return this;
  }

  /**
   * Appends a node. Inputs must already be defined (so nodes stay in topological order); '' marks
   * an omitted optional input. Outputs must be new names.
   */
  addNode(
    opType: string,
    inputs: string[],
    outputs: string[],
    attrs: Record<string, OnnxAttributeValue> = {},
    name?: string,
    domain = '',
  ): this {
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(opType)) throw new OnnxGraphError(`"${opType}" is not an operator name`);
    const nodeName = name ?? `${opType}_${this.nodes.length}`;
    if (this.nodeNames.has(nodeName)) throw new OnnxGraphError(`node name "${nodeName}" used twice`);
    for (const input of inputs) {
      if (input !== '' && !this.defined.has(input))
        throw new OnnxGraphError(`node "${nodeName}" (${opType}) reads "${input}", which no input, initializer or earlier node defines`);
    }
    if (outputs.length === 0) throw new OnnxGraphError(`node "${nodeName}" (${opType}) has no outputs`);
    const resolved = Object.entries(attrs).map(([k, v]) => [k, resolveAttribute(nodeName, k, v)] as [string, OnnxAttribute]);
    for (const out of outputs) this.define(out, `output of node "${nodeName}"`);
    this.nodeNames.add(nodeName);
    this.nodes.push({ opType, inputs: [...inputs], outputs: [...outputs], attrs: resolved, name: nodeName, domain });
    return this;
  }

  /** Serialized ModelProto. */
  toBytes(): Uint8Array {
    for (const o of this.outputs) {
      if (!this.defined.has(o.name)) throw new OnnxGraphError(`graph output "${o.name}" is produced by no node`);
    }
    if (this.outputs.length === 0) throw new OnnxGraphError('the graph declares no outputs');
    const graph = new ProtoWriter();
    for (const n of this.nodes) graph.message(1, encodeNode(n));
    graph.string(2, this.graphName);
    for (const t of this.initializers) graph.message(5, encodeTensor(t));
    for (const i of this.inputs) graph.message(11, encodeValueInfo(i));
    for (const o of this.outputs) graph.message(12, encodeValueInfo(o));

    const opset = new ProtoWriter().string(1, '').int(2, this.options.opset ?? 13);
    const model = new ProtoWriter()
      .int(1, this.options.irVersion ?? 8)
      .string(2, this.options.producerName ?? 'xception')
      .string(3, this.options.producerVersion ?? '0.1.0');
    if (this.options.docString) model.string(6, this.options.docString);
    model.message(7, graph).message(8, opset);
    return model.finish();
  }

  private define(name: string, what: string): void {
    checkName(name);
    if (this.defined.has(name)) throw new OnnxGraphError(`tensor name "${name}" (${what}) is already defined`);
    this.defined.add(name);
  }
}

function checkName(name: string): void {
  if (typeof name !== 'string' || name.length === 0) throw new OnnxGraphError('tensor names must be non-empty strings');
}

function checkDims(name: string, shape: OnnxDim[] | null): void {
  if (shape === null) return;
  for (const d of shape) {
    const ok = (typeof d === 'number' && Number.isSafeInteger(d) && d >= 0) || (typeof d === 'string' && d.length > 0);
    if (!ok) throw new OnnxGraphError(`"${name}": dimension ${JSON.stringify(d)} is neither a non-negative integer nor a symbolic name`);
  }
}

function checkTensor(name: string, shape: number[], length: number): void {
  checkDims(name, shape);
  if (shape.some((d) => typeof d !== 'number')) throw new OnnxGraphError(`initializer "${name}" needs a fixed shape`);
  const n = shape.reduce((a, b) => a * b, 1);
  if (n !== length)
    throw new OnnxGraphError(`initializer "${name}" has shape [${shape.join(', ')}] (${n} values) but ${length} values were given`);
}

function resolveAttribute(node: string, key: string, v: OnnxAttributeValue): OnnxAttribute {
  if (typeof v === 'number') return Number.isInteger(v) ? { kind: 'int', value: v } : { kind: 'float', value: v };
  if (typeof v === 'string') return { kind: 'string', value: v };
  if (Array.isArray(v)) return v.every(Number.isInteger) ? { kind: 'ints', value: v } : { kind: 'floats', value: v };
  if (v && typeof v === 'object' && 'kind' in v) return v;
  throw new OnnxGraphError(`node "${node}": attribute "${key}" has an unsupported value`);
}

function encodeAttribute(name: string, a: OnnxAttribute): ProtoWriter {
  const w = new ProtoWriter().string(1, name);
  switch (a.kind) {
    case 'float':
      return w.float(2, a.value).int(20, AttrType.FLOAT);
    case 'int':
      return w.int(3, a.value).int(20, AttrType.INT);
    case 'string':
      return w.string(4, a.value).int(20, AttrType.STRING);
    case 'tensor':
      return w.message(5, encodeTensor(a.value)).int(20, AttrType.TENSOR);
    case 'floats':
      return w.packedFloats(7, a.value).int(20, AttrType.FLOATS);
    case 'ints':
      return w.packedInts(8, a.value).int(20, AttrType.INTS);
  }
}

function encodeNode(n: NodeSpec): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name).string(4, n.opType);
  for (const [k, v] of n.attrs) w.message(5, encodeAttribute(k, v));
  if (n.domain) w.string(7, n.domain);
  return w;
}

function encodeTensor(t: OnnxTensor): ProtoWriter {
  const w = new ProtoWriter();
  if (t.shape.length > 0) w.packedInts(1, t.shape);
  w.int(2, ELEM_CODE[t.elemType]);
  w.string(8, t.name);
  // raw_data is little-endian by the ONNX spec: a plain byte copy on little-endian hosts.
  let raw: Uint8Array;
  if (IS_LITTLE_ENDIAN) raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  else {
    raw = new Uint8Array(t.data.byteLength);
    const view = new DataView(raw.buffer);
    if (t.data instanceof Float32Array) t.data.forEach((v, i) => view.setFloat32(i * 4, v, true));
    else if (t.data instanceof BigInt64Array) t.data.forEach((v, i) => view.setBigInt64(i * 8, v, true));
    else if (t.data instanceof Int32Array) t.data.forEach((v, i) => view.setInt32(i * 4, v, true));
    else raw.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  w.bytes(9, raw);
  return w;
}

function encodeValueInfo(v: ValueInfo): ProtoWriter {
  const tensorType = new ProtoWriter().int(1, ELEM_CODE[v.elemType]);
  if (v.shape !== null) {
    const shape = new ProtoWriter();
    for (const d of v.shape) {
      const dim = typeof d === 'number' ? new ProtoWriter().int(1, d) : new ProtoWriter().string(2, d);
      shape.message(1, dim);
    }
    tensorType.message(2, shape);
  }
  const type = new ProtoWriter().message(1, tensorType);
  return new ProtoWriter().string(1, v.name).message(2, type);
}

// ---------------------------------------------------------------------------------------------
// Keras → ONNX layout helpers (see the header comment).

/** Keras Conv2D kernel [kh, kw, in, out] (HWIO) → ONNX Conv weight [out, in, kh, kw] (OIHW). */
export function kerasConvKernelToOnnx(kernel: Float32Array, shape: readonly number[]): { shape: number[]; data: Float32Array } {
  const [kh, kw, cin, cout] = checkRank4('conv kernel', kernel, shape);
  const out = new Float32Array(kernel.length);
  for (let y = 0; y < kh; y++) {
    for (let x = 0; x < kw; x++) {
      for (let i = 0; i < cin; i++) {
        for (let o = 0; o < cout; o++) out[((o * cin + i) * kh + y) * kw + x] = kernel[((y * kw + x) * cin + i) * cout + o]!;
      }
    }
  }
  return { shape: [cout, cin, kh, kw], data: out };
}

/** Keras DepthwiseConv2D kernel [kh, kw, C, m] → ONNX Conv weight [C·m, 1, kh, kw] for group = C. */
export function kerasDepthwiseKernelToOnnx(
  kernel: Float32Array,
  shape: readonly number[],
): { shape: number[]; data: Float32Array; group: number } {
  const [kh, kw, c, m] = checkRank4('depthwise kernel', kernel, shape);
  const out = new Float32Array(kernel.length);
  for (let y = 0; y < kh; y++) {
    for (let x = 0; x < kw; x++) {
      for (let ch = 0; ch < c; ch++) {
        for (let j = 0; j < m; j++) out[((ch * m + j) * kh + y) * kw + x] = kernel[((y * kw + x) * c + ch) * m + j]!;
      }
    }
  }
  return { shape: [c * m, 1, kh, kw], data: out, group: c };
}

/**
 * ONNX `pads` [top, left, bottom, right] reproducing TensorFlow 'same' padding for a 2-D window
 * (the extra pixel of an odd total goes to the bottom/right).
 */
export function tfSamePads(
  inputHW: readonly [number, number],
  kernelHW: readonly [number, number],
  strides: readonly [number, number],
  dilations: readonly [number, number] = [1, 1],
): [number, number, number, number] {
  const pad = (n: number, k: number, s: number, d: number) => {
    const out = Math.ceil(n / s);
    const total = Math.max((out - 1) * s + (k - 1) * d + 1 - n, 0);
    return [Math.floor(total / 2), total - Math.floor(total / 2)] as const;
  };
  const [top, bottom] = pad(inputHW[0], kernelHW[0], strides[0], dilations[0]);
  const [left, right] = pad(inputHW[1], kernelHW[1], strides[1], dilations[1]);
  return [top, left, bottom, right];
}

function checkRank4(what: string, data: Float32Array, shape: readonly number[]): [number, number, number, number] {
  if (shape.length !== 4 || shape.some((d) => !Number.isSafeInteger(d) || d <= 0))
    throw new OnnxGraphError(`${what} shape [${shape.join(', ')}] is not a rank-4 list of positive sizes`);
  const n = shape.reduce((a, b) => a * b, 1);
  if (n !== data.length) throw new OnnxGraphError(`${what} shape [${shape.join(', ')}] needs ${n} values, got ${data.length}`);
  return shape as unknown as [number, number, number, number];
}
