/**
 * Checks an Int8Calibration against a model's int8 graph (interpret.ts int8Graph): the shape of
 * the record (it may come from an untrusted file), finite positive scales, keys that name values
 * of this graph, and every int8 node's input and output quantized. Any problem is a
 * CalibrationError naming it.
 */
import { OptionError } from '../core/errors.js';
import type { InferenceGraph } from './graph.js';
import { readsOf } from './interpret.js';
import { type CalibrationMethod, type Int8Calibration, type ValueQuant, valueKey } from './quant-types.js';

/** A calibration that is malformed or does not belong to the model's graph. */
export class CalibrationError extends OptionError {}

const METHODS: readonly CalibrationMethod[] = ['minmax', 'percentile', 'entropy'];
const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function fail(why: string): never {
  throw new CalibrationError(`int8 calibration: ${why}`);
}

function checkValue(key: string, v: unknown): ValueQuant {
  if (!isRecord(v)) fail(`value '${key}' is not an object`);
  const { scale, unsigned } = v;
  if (typeof scale !== 'number' || !Number.isFinite(scale) || !(scale > 0))
    fail(`value '${key}' has scale ${String(scale)}, not a finite positive number`);
  if (typeof unsigned !== 'boolean') fail(`value '${key}' has 'unsigned' ${JSON.stringify(unsigned)}, not true or false`);
  return { scale, unsigned };
}

/** The record's own shape and types (without a graph). */
export function parseInt8Calibration(raw: unknown): Int8Calibration {
  if (!isRecord(raw)) fail('not an object');
  const { method, images, percentile, values, fp32Nodes } = raw;
  if (!METHODS.includes(method as CalibrationMethod)) fail(`method ${JSON.stringify(method)} is not one of ${METHODS.join(', ')}`);
  if (typeof images !== 'number' || !Number.isInteger(images) || images < 1)
    fail(`images ${JSON.stringify(images)} is not a positive integer`);
  if (percentile !== undefined && (typeof percentile !== 'number' || !(percentile > 0 && percentile <= 100)))
    fail(`percentile ${JSON.stringify(percentile)} is not a number in (0, 100]`);
  if (!isRecord(values)) fail("'values' is not an object");
  if (!isRecord(fp32Nodes)) fail("'fp32Nodes' is not an object");
  const out: Int8Calibration = { method: method as CalibrationMethod, images, values: {}, fp32Nodes: {} };
  if (percentile !== undefined) out.percentile = percentile;
  for (const [k, v] of Object.entries(values)) {
    if (FORBIDDEN.has(k)) fail(`forbidden key '${k}'`);
    out.values[k] = checkValue(k, v);
  }
  for (const [k, v] of Object.entries(fp32Nodes)) {
    if (FORBIDDEN.has(k)) fail(`forbidden key '${k}'`);
    if (typeof v !== 'string') fail(`fp32 node '${k}' has a reason that is not a string`);
    out.fp32Nodes[k] = v;
  }
  return out;
}

/** Checks that `cal` belongs to `g`: known keys, and each int8 node's reads and result quantized. */
export function checkCalibrationFits(g: InferenceGraph, cal: Int8Calibration): void {
  const keys = new Map(g.nodes.map((n) => [valueKey(n), n]));
  const unknown = Object.keys(cal.values).find((k) => !keys.has(k));
  if (unknown !== undefined) fail(`value '${unknown}' is not a value of this model's graph (a calibration for another model?)`);
  for (const k of Object.keys(cal.fp32Nodes)) {
    const n = keys.get(k);
    if (!n || (n.op !== 'conv' && n.op !== 'dense')) fail(`fp32 node '${k}' is not a convolution or dense node of this model`);
  }
  for (const n of g.nodes) {
    if ((n.op !== 'conv' && n.op !== 'dense') || Object.hasOwn(cal.fp32Nodes, valueKey(n))) continue;
    for (const v of [...readsOf(n), n]) {
      if (!Object.hasOwn(cal.values, valueKey(v))) fail(`int8 node '${valueKey(n)}' uses value '${valueKey(v)}', which has no scale`);
    }
  }
}
