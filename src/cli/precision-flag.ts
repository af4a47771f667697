/**
 * `--precision fp32|bf16|int8` and `--calibration FILE.json` of predict and eval: the precision of
 * the compiled plan they infer with. int8 needs activation scales: an Int8Calibration as JSON
 * (what the calibrator writes). The file is read and checked against the model before any image.
 */
import { readFile, stat } from 'node:fs/promises';
import { OptionError } from '../core/errors.js';
import { type InferencePrecision, setInferencePrecision } from '../infer/auto.js';
import { checkCalibrationFor } from '../infer/int8-plan.js';
import type { Int8Calibration } from '../infer/quant-types.js';
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
    `  ${pad('--calibration FILE')}int8's activation scales: an Int8Calibration as JSON (required`,
    `  ${pad('')}with --precision int8)`,
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

/** The flags' precision (null: fp32); errors for int8 without a calibration or a calibration without int8. */
export async function precisionFromFlags(v: Record<string, string | boolean | undefined>): Promise<InferencePrecision | null> {
  const precision = choiceFlag('precision', v['precision'], ['fp32', 'bf16', 'int8'] as const);
  const file = v['calibration'] as string | undefined;
  if (precision === 'int8' && file === undefined)
    throw new OptionError('--precision int8 needs --calibration FILE.json (activation scales from calibration)');
  if (file !== undefined && precision !== 'int8') throw new OptionError('--calibration is used with --precision int8 only');
  if (!precision || precision === 'fp32') return null;
  return precision === 'int8' ? { precision, calibration: await readCalibration(file!) } : { precision };
}

/** Sets `model`'s inference precision, checking an int8 calibration against it first. */
export function applyPrecision(model: Model, p: InferencePrecision | null): void {
  if (p?.calibration) checkCalibrationFor(model, p.calibration);
  setInferencePrecision(model, p);
}
