/**
 * `--precision fp32|bf16|int8` and `--calibration FILE.json` of predict and eval: the precision of
 * the compiled plan they infer with. int8 needs activation scales: those a `xception quantize`
 * file carries with its weights, or an Int8Calibration as JSON. They are checked against the
 * model before any image.
 */
import { stat as statPath } from 'node:fs/promises';
import { readFile, stat } from 'node:fs/promises';
import { OptionError } from '../core/errors.js';
import { type InferencePrecision, setInferencePrecision } from '../infer/auto.js';
import { checkCalibrationFor } from '../infer/int8-plan.js';
import type { Int8Calibration } from '../infer/quant-types.js';
import { readInt8Calibration } from '../io/quantized-file.js';
import type { Model } from '../nn/model.js';
import { choiceFlag, type FlagSpec } from './args.js';

export const PRECISION_FLAGS: FlagSpec = {
  precision: { type: 'string' },
  calibration: { type: 'string' },
};

/** Help lines, the flag column `width` characters wide. */
export function precisionHelp(width: number): string {
  const pad = (s: string) => s.padEnd(width);
  return [
    `  ${pad('--precision P')}fp32 | bf16 | int8: the compiled plan's arithmetic (default fp32;`,
    `  ${pad('')}bf16 and int8 need the native backend)`,
    `  ${pad('--calibration FILE')}int8's activation scales as JSON (default: those of a --weights`,
    `  ${pad('')}file written by \`xception quantize\`)`,
  ].join('\n');
}

/** A calibration file is a few hundred kB; refuse anything absurd before reading it. */
const MAX_CALIBRATION_BYTES = 64 << 20;

async function readCalibration(path: string): Promise<Int8Calibration> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (e) {
    throw new OptionError(`--calibration ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (size > MAX_CALIBRATION_BYTES) throw new OptionError(`--calibration ${path}: ${size} bytes, too large for a calibration`);
  try {
    return JSON.parse(await readFile(path, 'utf8')) as Int8Calibration;
  } catch (e) {
    throw new OptionError(`--calibration ${path}: not JSON (${(e as Error).message})`);
  }
}

/**
 * The flags' precision (null: fp32); an error for a calibration without int8. int8 without
 * --calibration takes its scales from the weights file later (see applyPrecision).
 */
export async function precisionFromFlags(v: Record<string, string | boolean | undefined>): Promise<InferencePrecision | null> {
  const precision = choiceFlag('precision', v['precision'], ['fp32', 'bf16', 'int8'] as const);
  const file = v['calibration'] as string | undefined;
  if (file !== undefined && precision !== 'int8') throw new OptionError('--calibration is used with --precision int8 only');
  if (!precision || precision === 'fp32') return null;
  if (precision === 'int8' && file === undefined) return { precision };
  return precision === 'int8' ? { precision, calibration: await readCalibration(file!) } : { precision };
}

/**
 * Sets `model`'s inference precision, checking an int8 calibration against it first. int8 without
 * --calibration reads the scales a quantized weights file (`weightsFile`) carries.
 */
export async function applyPrecision(model: Model, p: InferencePrecision | null, weightsFile: string | null): Promise<void> {
  if (p?.precision === 'int8' && !p.calibration) p = { precision: 'int8', calibration: await calibrationOfWeights(model, weightsFile) };
  if (p?.calibration) checkCalibrationFor(model, p.calibration);
  setInferencePrecision(model, p);
}

async function calibrationOfWeights(model: Model, weightsFile: string | null): Promise<Int8Calibration> {
  const isFile =
    weightsFile !== null &&
    (await statPath(weightsFile).then(
      (s) => s.isFile(),
      () => false,
    ));
  const calibration = isFile ? await readInt8Calibration(weightsFile!, model) : null;
  if (calibration) return calibration;
  throw new OptionError(
    `--precision int8 needs activation scales: ${weightsFile === null ? 'no --weights given' : `${weightsFile} holds none`}; ` +
      'write a quantized file with `xception quantize --weights F --calibrate SPEC --out Q` and pass --weights Q, or give --calibration FILE.json',
  );
}
