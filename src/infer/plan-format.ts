/**
 * The compiled plan's number format, TypeScript's half: the codes and field orders native/plan.h
 * reads (its enums and field lists carry the same names and values; test/infer/plan-format.test.ts
 * checks that they agree). The spec is a flat list of numbers; the layout of each step is
 * documented in native/plan.h.
 */
import type { ConvGeometry, EltwiseAlg, PoolWindow } from './graph.js';

export const PLAN_FORMAT_VERSION = 2;

/** Step kinds (C++: enum class Op, names capitalized). */
export const OP = {
  conv: 1,
  eltwise: 2,
  pool: 3,
  globalPool: 4,
  add: 5,
  concat: 6,
  dense: 7,
  softmax: 8,
  batchNorm: 9,
} as const;

/** Post-op kinds (C++: enum class PostKind). */
export const POST_KIND = { eltwise: 1, sum: 2 } as const;

/** Eltwise algorithms, of steps and post-ops (C++: enum class EltwiseAlg). */
export const ELTWISE_ALG: Record<EltwiseAlg, number> = { relu: 1, elu: 2 };

/** Pooling algorithms (C++: enum class PoolAlg); average excludes the padding. */
export const POOL_ALG = { max: 1, avg: 2 } as const;

/** Header fields in order (C++: enum class HeaderField). */
export const HEADER = ['formatVersion', 'batch', 'height', 'width', 'channels', 'precision', 'layout', 'stepCount', 'outputValue'] as const;

/** Header precision codes (C++: enum class Precision). */
export const PRECISION = { fp32: 0, bf16: 1, int8: 2 } as const;
/** An int8 plan's value-table entry fields in order (C++: enum class ValueQuantField; `unsigned_` there). */
export const VALUE_QUANT = ['scale', 'unsigned'] as const;
/** Header layout codes: 0 lets oneDNN choose, 1 blocked (see native/plan.cc, Builder::choose). */
export const LAYOUT = { 'channels-last': 0, blocked: 1 } as const;

/** A convolution step's geometry fields in order (C++: enum class ConvField). */
export const CONV_GEOMETRY = [
  'inH',
  'inW',
  'inC',
  'outH',
  'outW',
  'outC',
  'kH',
  'kW',
  'sH',
  'sW',
  'dH',
  'dW',
  'padT',
  'padL',
  'padB',
  'padR',
  'groups',
] as const satisfies readonly (keyof ConvGeometry)[];

/** A pooling step's window fields in order (C++: enum class PoolField). */
export const POOL_WINDOW = ['winH', 'winW', 'sH', 'sW', 'padT', 'padL', 'padB', 'padR'] as const satisfies readonly (keyof PoolWindow)[];

/** A "no index" for optional weights and the sum value. */
export const NONE = -1;
