/**
 * The self-contained quantized file `xception quantize` writes: the model's weights file
 * (safetensors, as `train` and `export` write it, record included) with the int8 calibration in
 * its metadata under `int8_calibration` (JSON of an Int8Calibration, infer/quant-types.ts). Any
 * command that reads weights reads it as usual (fp32); int8 consumers read the calibration with
 * readInt8Calibration, which checks it like everything else read from a file: types, finite
 * positive scales, and (given the model) keys that name values of that model's int8 graph.
 */
import { CalibrationError, checkCalibrationFits, parseInt8Calibration } from '../infer/calibration-check.js';
import { int8Graph } from '../infer/interpret.js';
import type { Int8Calibration } from '../infer/quant-types.js';
import type { Model } from '../nn/model.js';
import { WeightFileError } from './errors.js';
import type { ModelRecord } from './model-record.js';
import { namedWeightsOf, peekSafetensorsMetadata, weightsMetadata } from './model-weights.js';
import { writeSafetensorsFile } from './safetensors.js';

export const INT8_CALIBRATION_KEY = 'int8_calibration';

/** Writes `model`'s weights with `record` and `calibration` as one safetensors file, atomically. */
export async function saveQuantizedWeights(
  model: Model,
  path: string,
  calibration: Int8Calibration,
  record: ModelRecord | null,
): Promise<void> {
  checkCalibrationFits(int8Graph(model), calibration);
  const metadata = { ...weightsMetadata(record), [INT8_CALIBRATION_KEY]: JSON.stringify(calibration) };
  await writeSafetensorsFile(path, namedWeightsOf(model), metadata);
}

/** The calibration in a weights file's metadata (null without one); a malformed one is a WeightFileError. */
export function calibrationFromMetadata(meta: Readonly<Record<string, string>>, file: string): Int8Calibration | null {
  const text = meta[INT8_CALIBRATION_KEY];
  if (text === undefined) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new WeightFileError(file, `its '${INT8_CALIBRATION_KEY}' metadata is not JSON`);
  }
  try {
    return parseInt8Calibration(raw);
  } catch (e) {
    if (e instanceof CalibrationError) throw new WeightFileError(file, e.message);
    throw e;
  }
}

/** A WeightFileError unless `calibration` names values of `model`'s int8 graph (a file for another model). */
export function checkFileCalibrationFits(model: Model, calibration: Int8Calibration, file: string): void {
  try {
    checkCalibrationFits(int8Graph(model), calibration);
  } catch (e) {
    if (e instanceof CalibrationError) throw new WeightFileError(file, `does not fit model '${model.name}': ${e.message}`);
    throw e;
  }
}

/**
 * The int8 calibration a weights file carries, or null when it has none (or is not a safetensors
 * file: a run folder, a Keras H5 file). With `model`, also checked against that model's graph.
 */
export async function readInt8Calibration(file: string, model?: Model): Promise<Int8Calibration | null> {
  const meta = await peekSafetensorsMetadata(file);
  const cal = meta ? calibrationFromMetadata(meta, file) : null;
  if (cal && model) checkFileCalibrationFits(model, cal, file);
  return cal;
}
