/**
 * Compiled inference on the wasm backend: the same flat spec as the native plan (compile.ts,
 * format in plan-format.ts and native/plan.h), run by TypeScript over the wasm kernels. Batch
 * norms arrive folded into the convolutions' weights; a convolution's or dense step's bias, residual
 * sum and ReLU/ELU run inside its GEMM as each output tile is stored (the Epilogue of
 * wasm/src/kernels.h), or as passes of their own where their order does not fit one. Every value lives in
 * one arena allocated once, laid out by liveness (a value's memory is reused once its last reader
 * has run); weights sit in one block and kernel parameters are written once, so a run allocates
 * nothing but its output. The GEMM operands that never change (the weights of ungrouped
 * convolutions and dense steps) are stored packed as the GEMM reads them, so a run packs only
 * activations. Activations stay NHWC (the kernels' layout). fp32 only.
 */
import type { Handle } from '../core/backend.js';
import { BackendError } from '../core/errors.js';
import type { WasmBackend, WasmPlanAccess } from '../backends/wasm/backend.js';
import { EPILOGUE_BYTES, writeEpilogue } from '../backends/wasm/kernels.js';
import { CompileError, type CompiledSpec } from './compile.js';
import { CONV_GEOMETRY, ELTWISE_ALG, HEADER, NONE, OP, POOL_ALG, POOL_WINDOW, POST_KIND, PRECISION } from './plan-format.js';

/** Each step's parameter block: conv/pool parameters (18 int32), then its Epilogue at EPILOGUE_AT. */
const EPILOGUE_AT = 80;
const STEP_PARAM_BYTES = EPILOGUE_AT + EPILOGUE_BYTES + 24;

/** A value's per-image shape [h, w, c] (dense and global pool outputs are [1, 1, features]). */
type Shape = [number, number, number];

interface Post {
  kind: number;
  alg: number;
  alpha: number;
}

type Step =
  | { op: 'conv'; in: number; geometry: number[]; w: number; b: number; sum: number; posts: Post[] }
  | { op: 'eltwise'; in: number; alg: number; alpha: number }
  | { op: 'pool'; in: number; alg: number; window: number[] }
  | { op: 'gpool'; in: number; alg: number }
  | { op: 'add' | 'concat'; ins: number[] }
  | { op: 'dense'; in: number; units: number; w: number; b: number; posts: Post[] }
  | { op: 'softmax'; in: number }
  | { op: 'bn'; in: number; eps: number; weights: number[] };

/**
 * The weights the GEMM reads as its B[K, N] and that are stored packed (gemm_prepack_b): those of
 * ungrouped convolutions (K = kh·kw·inC, N = outC; grouped and depthwise ones read theirs as they
 * are) and of dense steps (K = features, N = units), each used by that one step only.
 */
function packedWeights(steps: Step[], shapes: Shape[]): Map<number, { K: number; N: number }> {
  const uses = new Map<number, number>();
  const gemmB = new Map<number, { K: number; N: number }>();
  for (const s of steps) {
    const ws = s.op === 'conv' || s.op === 'dense' ? [s.w, s.b] : s.op === 'bn' ? s.weights : [];
    for (const w of ws) uses.set(w, (uses.get(w) ?? 0) + 1);
    if (s.op === 'conv') {
      const g = (f: (typeof CONV_GEOMETRY)[number]) => s.geometry[CONV_GEOMETRY.indexOf(f)]!;
      if (g('groups') === 1) gemmB.set(s.w, { K: g('kH') * g('kW') * g('inC'), N: g('outC') });
    } else if (s.op === 'dense') {
      const [h, w, c] = shapes[s.in]!;
      gemmB.set(s.w, { K: h * w * c, N: s.units });
    }
  }
  for (const w of gemmB.keys()) if (uses.get(w) !== 1) gemmB.delete(w);
  return gemmB;
}

/** Reads the steps of an fp32 spec, in order (step i defines value i + 1). */
function decodeSteps(spec: Float64Array): { header: Record<(typeof HEADER)[number], number>; steps: Step[] } {
  const header = Object.fromEntries(HEADER.map((f, i) => [f, spec[i]!])) as Record<(typeof HEADER)[number], number>;
  if (header.precision !== PRECISION.fp32) throw new CompileError('compileInference on wasm: fp32 plans only');
  let at = HEADER.length;
  const next = () => {
    if (at >= spec.length) throw new CompileError('compileInference on wasm: internal error: truncated spec');
    return spec[at++]!;
  };
  const many = (n: number) => Array.from({ length: n }, next);
  const posts = () => Array.from({ length: next() }, () => ({ kind: next(), alg: next(), alpha: next() }));
  const steps: Step[] = [];
  for (let i = 0; i < header.stepCount; i++) {
    const op = next();
    if (op === OP.conv) {
      const [input, geometry, w, b, sum] = [next(), many(CONV_GEOMETRY.length), next(), next(), next()];
      steps.push({ op: 'conv', in: input, geometry, w, b, sum, posts: posts() });
    } else if (op === OP.eltwise) steps.push({ op: 'eltwise', in: next(), alg: next(), alpha: next() });
    else if (op === OP.pool) steps.push({ op: 'pool', in: next(), alg: next(), window: many(POOL_WINDOW.length) });
    else if (op === OP.globalPool) steps.push({ op: 'gpool', in: next(), alg: next() });
    else if (op === OP.add || op === OP.concat) steps.push({ op: op === OP.add ? 'add' : 'concat', ins: many(next()) });
    else if (op === OP.dense) {
      const [input, units, w, b] = [next(), next(), next(), next()];
      steps.push({ op: 'dense', in: input, units, w, b, posts: posts() });
    } else if (op === OP.softmax) steps.push({ op: 'softmax', in: next() });
    else if (op === OP.batchNorm) steps.push({ op: 'bn', in: next(), eps: next(), weights: many(4) });
    else throw new CompileError(`compileInference on wasm: internal error: step kind ${op}`);
  }
  return { header, steps };
}

function inputsOf(s: Step): number[] {
  if ('ins' in s) return s.ins;
  return s.op === 'conv' && s.sum !== NONE ? [s.in, s.sum] : [s.in];
}

/** The per-image shape of each value (0 is the input), checked against what each step reads. */
function valueShapes(header: Record<(typeof HEADER)[number], number>, steps: Step[]): Shape[] {
  const shapes: Shape[] = [[header.height, header.width, header.channels]];
  const of = (v: number): Shape => {
    const s = shapes[v];
    if (!s) throw new CompileError(`compileInference on wasm: internal error: value ${v} read before it is made`);
    return s;
  };
  for (const s of steps) {
    const x = of(inputsOf(s)[0]!);
    for (const v of inputsOf(s)) of(v);
    if (s.op === 'conv') {
      const [inH, inW, inC, outH, outW, outC] = s.geometry as [number, number, number, number, number, number];
      if (x[0] !== inH || x[1] !== inW || x[2] !== inC)
        throw new CompileError('compileInference on wasm: internal error: conv input shape');
      shapes.push([outH, outW, outC]);
    } else if (s.op === 'pool') {
      shapes.push([...poolOut(x, s.window), x[2]]);
    } else if (s.op === 'gpool') shapes.push([1, 1, x[2]]);
    else if (s.op === 'concat') shapes.push([x[0], x[1], s.ins.reduce((c, v) => c + of(v)[2], 0)]);
    else if (s.op === 'dense') shapes.push([1, 1, s.units]);
    else shapes.push([...x]);
  }
  return shapes;
}

/**
 * Arena offsets (in floats) by liveness: value v lives from the step that makes it to its last
 * reader (the output to the end); each value takes the lowest offset that overlaps no value alive
 * at the same time. Returns the offsets and the arena's size.
 */
export function arenaLayout(sizes: readonly number[], lastUse: readonly number[]): { offsets: number[]; floats: number } {
  const align = (n: number) => Math.ceil(n / 16) * 16;
  const placed: { start: number; end: number; from: number; to: number }[] = [];
  const offsets: number[] = [];
  let floats = 0;
  for (let v = 0; v < sizes.length; v++) {
    const [from, to] = [v - 1, lastUse[v]!];
    const clashes = placed.filter((p) => p.from <= to && from <= p.to).sort((a, b) => a.start - b.start);
    let start = 0;
    for (const p of clashes) {
      if (start + sizes[v]! <= p.start) break;
      start = Math.max(start, p.end);
    }
    const end = start + align(sizes[v]!);
    placed.push({ start, end, from, to });
    offsets.push(start);
    floats = Math.max(floats, end);
  }
  return { offsets, floats };
}

export interface WasmPlanInfo {
  steps: string[];
  arenaBytes: number;
  /** What the arena would take without reuse: every value in its own memory. */
  valueBytes: number;
  weightBytes: number;
  scratchpadBytes: number;
}

export class WasmPlan {
  readonly inputSize: number;
  readonly outputSize: number;
  private readonly access: WasmPlanAccess;
  private readonly blocks: number[] = [];
  private readonly calls: { label: string; run: () => void }[] = [];
  private readonly weightAt: number[] = [];
  private readonly weightSizes: number[];
  private readonly packed: Map<number, { K: number; N: number }>;
  private readonly inputAt: number;
  private readonly outputAt: number;
  private readonly sizes: { arena: number; values: number; weights: number; scratch: number };

  constructor(
    readonly backend: WasmBackend,
    compiled: CompiledSpec,
    weights: Float32Array[],
  ) {
    this.access = backend.planAccess();
    const { header, steps } = decodeSteps(compiled.spec);
    const shapes = valueShapes(header, steps);
    const batch = header.batch;
    const sizes = shapes.map(([h, w, c]) => batch * h * w * c);
    const lastUse = sizes.map(() => -1);
    steps.forEach((s, i) => {
      for (const v of inputsOf(s)) lastUse[v] = i;
    });
    lastUse[header.outputValue] = steps.length;
    const layout = arenaLayout(sizes, lastUse);
    this.weightSizes = weights.map((w) => w.length);
    this.packed = packedWeights(steps, shapes);
    const stored = this.weightSizes.map((n, i) => {
      const p = this.packed.get(i);
      return p ? this.access.kernels.gemm_packed_b_floats(p.K, p.N) : n;
    });
    const scratchBytes = Math.max(64, ...steps.map((s) => this.scratchBytesOf(s, batch, shapes)));
    const wFloats = stored.reduce((a, n) => a + Math.ceil(n / 16) * 16, 0);
    const paramBytes = steps.length * STEP_PARAM_BYTES;
    try {
      const arena = this.block(layout.floats * 4, 'compiled plan arena');
      const wBlock = this.block(wFloats * 4, 'compiled plan weights');
      const scratch = this.block(scratchBytes, 'compiled plan scratch');
      const params = this.block(paramBytes, 'compiled plan parameters');
      let w = wBlock;
      for (const n of stored) {
        this.weightAt.push(w);
        w += Math.ceil(n / 16) * 16 * 4;
      }
      const value = (v: number) => arena + layout.offsets[v]! * 4;
      steps.forEach((s, i) => {
        const c = { x: value(inputsOf(s)[0]!), y: value(i + 1), params: params + i * STEP_PARAM_BYTES, scratch, batch, shapes, value };
        this.calls.push({ label: describe(s, shapes[i + 1]!), run: this.stepCall(s, c) });
      });
      this.inputAt = value(0);
      this.outputAt = value(header.outputValue);
    } catch (e) {
      this.free();
      throw e;
    }
    this.inputSize = sizes[0]!;
    this.outputSize = sizes[header.outputValue]!;
    this.sizes = { arena: layout.floats * 4, values: sizes.reduce((a, n) => a + n * 4, 0), weights: wFloats * 4, scratch: scratchBytes };
    this.setWeights(weights);
  }

  private block(bytes: number, what: string): number {
    const at = this.access.heap.alloc(bytes, what);
    this.blocks.push(at);
    return at;
  }

  private f32(offset: number, size: number): Float32Array {
    return new Float32Array(this.access.kernels.memory.buffer, offset, size);
  }

  /** Scratch a step needs (bytes): im2col rows, global max-pool argmax, statistics. */
  private scratchBytesOf(s: Step, batch: number, shapes: Shape[]): number {
    const x = shapes[inputsOf(s)[0]!]!;
    if (s.op === 'conv') {
      const p = new Int32Array(this.access.kernels.memory.buffer, this.access.heap.alloc(18 * 4, 'conv parameters'), 18);
      p.set([batch, ...s.geometry]);
      const floats = this.access.kernels.conv_scratch_floats(p.byteOffset);
      this.access.heap.release(p.byteOffset);
      return floats * 4;
    }
    if (s.op === 'gpool') return s.alg === POOL_ALG.max ? 4 * (batch * x[2] + x[2]) : 8 * x[2];
    if (s.op === 'bn') return 32 * x[2];
    return 0;
  }

  /** The kernel call of one step, its pointers and parameters resolved now. */
  private stepCall(
    s: Step,
    c: { x: number; y: number; params: number; scratch: number; batch: number; shapes: Shape[]; value: (v: number) => number },
  ): () => void {
    const k = this.access.kernels;
    const x = c.shapes[inputsOf(s)[0]!]!;
    const n = c.batch * x[0] * x[1] * x[2];
    const ints = (nums: number[]) => new Int32Array(k.memory.buffer, c.params, nums.length).set(nums);
    switch (s.op) {
      case 'conv': {
        ints([c.batch, ...s.geometry]);
        const [rows, outC] = [c.batch * s.geometry[3]! * s.geometry[4]!, s.geometry[5]!];
        const ep = this.epilogue(s.posts, c.y, rows, outC, s.b, s.sum === NONE ? 0 : c.value(s.sum), c.params + EPILOGUE_AT);
        const conv = this.packed.has(s.w) ? k.conv2d_forward_packed : k.conv2d_forward_fused;
        return () => {
          conv(c.params, c.x, this.weightAt[s.w]!, c.y, c.scratch, this.access.work, ep.fused);
          ep.after();
        };
      }
      case 'dense': {
        const features = x[0] * x[1] * x[2];
        const ep = this.epilogue(s.posts, c.y, c.batch, s.units, s.b, 0, c.params + EPILOGUE_AT);
        return () => {
          k.gemm_fused(c.batch, s.units, features, c.x, this.weightAt[s.w]!, c.y, ep.fused, this.access.work);
          ep.after();
        };
      }
      case 'eltwise':
        return s.alg === ELTWISE_ALG.relu ? () => k.relu(c.x, n, c.y) : () => k.elu(c.x, s.alpha, n, c.y);
      case 'pool': {
        ints([c.batch, x[0], x[1], x[2], ...poolOut(x, s.window), ...s.window]);
        return s.alg === POOL_ALG.max ? () => k.max_pool_forward(c.params, c.x, c.y) : () => k.avg_pool_forward(c.params, c.x, c.y);
      }
      case 'gpool': {
        const [S, C] = [x[0] * x[1], x[2]];
        return s.alg === POOL_ALG.max
          ? () => k.global_max_pool_forward(c.x, c.batch, S, C, c.y, c.scratch)
          : () => k.global_avg_pool_forward(c.x, c.batch, S, C, c.y, c.scratch);
      }
      case 'add': {
        const [first, ...rest] = s.ins.map(c.value);
        return () => {
          k.axpby(first!, rest[0] ?? first!, 1, rest.length > 0 ? 1 : 0, n, c.y);
          for (const r of rest.slice(1)) k.axpby(c.y, r, 1, 1, n, c.y);
        };
      }
      case 'concat':
        return this.concatCall(s.ins, c);
      case 'softmax':
        return () => k.softmax(c.x, c.batch, x[0] * x[1] * x[2], c.y);
      case 'bn': {
        const [g, b, m, v] = s.weights.map((i) => this.weightAt[i]!);
        return () => k.batchnorm_inference(c.x, n / x[2], x[2], g!, b!, m!, v!, s.eps, 0, c.y, c.scratch);
      }
    }
  }

  private concatCall(ins: number[], c: { y: number; batch: number; shapes: Shape[]; value: (v: number) => number }): () => void {
    const k = this.access.kernels;
    const first = c.shapes[ins[0]!]!;
    const rows = c.batch * first[0] * first[1];
    const total = ins.reduce((a, v) => a + c.shapes[v]![2], 0);
    return () => {
      let col = 0;
      for (const v of ins) {
        const C = c.shapes[v]![2];
        k.copy_columns(c.value(v), C, c.y + col * 4, total, rows, C);
        col += C;
      }
    };
  }

  /**
   * Bias, then the post-ops in order, in as few passes as their order allows. One pass (the usual
   * case: bias, residual sum, then an activation) is written as an Epilogue at `at` and fused into
   * the kernel (`fused`, 0 when there is nothing to do); more run as passes of their own (`after`).
   */
  private epilogue(
    posts: Post[],
    y: number,
    rows: number,
    C: number,
    bias: number,
    sum: number,
    at: number,
  ): { fused: number; after: () => void } {
    const passes: { bias: boolean; sum: boolean; act: number; alpha: number }[] = [{ bias: bias !== NONE, sum: false, act: 0, alpha: 0 }];
    for (const p of posts) {
      const last = passes[passes.length - 1]!;
      if (p.kind === POST_KIND.sum) {
        if (last.act !== 0) passes.push({ bias: false, sum: true, act: 0, alpha: 0 });
        else last.sum = true;
      } else if (last.act !== 0) passes.push({ bias: false, sum: false, act: p.alg, alpha: p.alpha });
      else Object.assign(last, { act: p.alg, alpha: p.alpha });
    }
    const live = passes.filter((p) => p.bias || p.sum || p.act !== 0);
    const k = this.access.kernels;
    const biasAt = (p: { bias: boolean }) => (p.bias ? this.weightAt[bias]! : 0);
    if (live.length === 0) return { fused: 0, after: () => {} };
    if (live.length === 1) {
      const p = live[0]!;
      writeEpilogue(k.memory, at, { bias: biasAt(p), sum: p.sum ? sum : 0, act: p.act, alpha: p.alpha });
      return { fused: at, after: () => {} };
    }
    return {
      fused: 0,
      after: () => {
        for (const p of live) k.plan_epilogue(y, rows, C, biasAt(p), p.sum ? sum : 0, p.act, p.alpha);
      },
    };
  }

  /** Copies (folded) weights in; the same count and sizes as the plan was built with. */
  setWeights(weights: Float32Array[]): void {
    this.live();
    if (weights.length !== this.weightSizes.length || weights.some((w, i) => w.length !== this.weightSizes[i]))
      throw new BackendError('wasm plan: new weights differ in count or size from those the plan was built with');
    const k = this.access.kernels;
    weights.forEach((w, i) => {
      const p = this.packed.get(i);
      if (!p) return this.f32(this.weightAt[i]!, w.length).set(w);
      const raw = this.access.heap.alloc(w.length * 4, 'compiled plan weights to pack');
      try {
        this.f32(raw, w.length).set(w);
        k.gemm_prepack_b(p.K, p.N, raw, this.weightAt[i]!);
      } finally {
        this.access.heap.release(raw);
      }
    });
  }

  /** Runs on a wasm handle of inputSize floats; returns a new handle of outputSize floats. */
  runHandle(x: Handle): Handle {
    this.live();
    const from = this.access.offsetOf('compiled plan', x, this.inputSize);
    this.f32(this.inputAt, this.inputSize).set(this.f32(from, this.inputSize));
    return this.runToHandle();
  }

  runData(x: Float32Array): Float32Array {
    this.live();
    this.f32(this.inputAt, this.inputSize).set(x);
    this.runStepsTimed(null);
    return this.f32(this.outputAt, this.outputSize).slice();
  }

  /** Runs on a wasm handle, timing each step. */
  profile(x: Handle): Array<{ step: string; seconds: number }> {
    this.live();
    const from = this.access.offsetOf('compiled plan', x, this.inputSize);
    this.f32(this.inputAt, this.inputSize).set(this.f32(from, this.inputSize));
    const seconds: number[] = [];
    this.runStepsTimed(seconds);
    return this.calls.map((c, i) => ({ step: c.label, seconds: seconds[i]! }));
  }

  private runToHandle(): Handle {
    this.runStepsTimed(null);
    return this.access.make(this.outputSize, 'compiled plan output', (out) =>
      this.f32(out, this.outputSize).set(this.f32(this.outputAt, this.outputSize)),
    );
  }

  private runStepsTimed(seconds: number[] | null): void {
    this.live();
    try {
      for (const c of this.calls) {
        const t0 = seconds ? performance.now() : 0;
        c.run();
        if (seconds) seconds.push((performance.now() - t0) / 1000);
      }
    } catch (e) {
      throw e instanceof WebAssembly.RuntimeError ? new BackendError(`wasm compiled plan: ${e.message}`) : e;
    }
  }

  info(): WasmPlanInfo {
    return {
      steps: this.calls.map((c) => c.label),
      arenaBytes: this.sizes.arena,
      valueBytes: this.sizes.values,
      weightBytes: this.sizes.weights,
      scratchpadBytes: this.sizes.scratch,
    };
  }

  get freed(): boolean {
    return this.blocks.length === 0;
  }

  free(): void {
    for (const b of this.blocks.splice(0)) this.access.heap.release(b);
  }

  private live(): void {
    if (this.freed) throw new BackendError('wasm plan: used after free');
  }
}

function poolOut(x: Shape, window: number[]): [number, number] {
  const [winH, winW, sH, sW, padT, padL, padB, padR] = window as [number, number, number, number, number, number, number, number];
  return [Math.floor((x[0] + padT + padB - winH) / sH) + 1, Math.floor((x[1] + padL + padR - winW) / sW) + 1];
}

function describe(s: Step, out: Shape): string {
  const posts = 'posts' in s ? s.posts.map((p) => (p.kind === POST_KIND.sum ? '+sum' : p.alg === ELTWISE_ALG.relu ? '+relu' : '+elu')) : [];
  const kind = s.op === 'conv' && s.geometry[16]! > 1 ? 'depthwise conv' : s.op;
  return `${kind}${posts.join('')} → ${out.join('×')} (wasm)`;
}
