/**
 * Training precision: 'fp32', or 'bf16' mixed precision — convolutions (forward, backward data and
 * backward filter) multiply in bfloat16 on the native backend and return float32; master weights,
 * optimizer state, batch-norm statistics, dense layers and the loss stay float32.
 */
import type { Backend } from '../core/backend.js';
import { OptionError } from '../core/errors.js';

export const TRAIN_PRECISIONS = ['fp32', 'bf16'] as const;
export type TrainPrecision = (typeof TRAIN_PRECISIONS)[number];

/** The backend side of mixed precision (the native backend has it; the reference does not). */
interface PrecisionBackend {
  setConvPrecision(precision: TrainPrecision): TrainPrecision;
  bf16Hardware(): 'native' | 'emulated' | 'unsupported';
}

function precisionBackend(backend: Backend): PrecisionBackend | null {
  const b = backend as Partial<PrecisionBackend>;
  return typeof b.setConvPrecision === 'function' && typeof b.bf16Hardware === 'function' ? (b as PrecisionBackend) : null;
}

export function validatePrecision(v: unknown): void {
  if (v !== undefined && !TRAIN_PRECISIONS.includes(v as TrainPrecision))
    throw new OptionError(`precision must be one of ${TRAIN_PRECISIONS.join(', ')}, got ${JSON.stringify(v)}`);
}

/** A config's precision: absent means fp32 (runs from before the option). */
export const precisionOf = (c: { precision?: TrainPrecision | undefined }): TrainPrecision => c.precision ?? 'fp32';

/**
 * Whether bf16 arithmetic is native, emulated or unsupported on `backend`'s CPU; null for a
 * backend without mixed precision (the reference backend).
 */
export function bf16HardwareOf(backend: Backend): 'native' | 'emulated' | 'unsupported' | null {
  return precisionBackend(backend)?.bf16Hardware() ?? null;
}

/** That `backend` can train in `precision` (the checks of useTrainPrecision, changing nothing). */
export function checkTrainPrecision(backend: Backend, precision: TrainPrecision): void {
  validatePrecision(precision);
  if (precision === 'fp32') return;
  const hw = bf16HardwareOf(backend);
  if (hw === null) {
    throw new OptionError(
      `precision bf16 runs on the native backend; the ${backend.name} backend has no mixed precision (use --backend native or --precision fp32)`,
    );
  }
  if (hw === 'unsupported') throw new OptionError('precision bf16 needs a CPU with AVX-512 (oneDNN has no bf16 kernels here); use fp32');
}

/**
 * Puts `backend`'s convolutions in `precision` and returns the function that restores the
 * previous mode. bf16 needs the native backend on a CPU with AVX-512: anything else is an
 * OptionError before a step runs.
 */
export function useTrainPrecision(backend: Backend, precision: TrainPrecision): () => void {
  checkTrainPrecision(backend, precision);
  const b = precisionBackend(backend);
  if (!b) return () => {};
  const was = b.setConvPrecision(precision);
  return () => void b.setConvPrecision(was);
}

/** Resuming needs the run's own precision; says so instead of the generic settings diff. */
export function checkPrecisionResume(saved: { precision?: TrainPrecision }, now: { precision?: TrainPrecision }): void {
  if (precisionOf(saved) === precisionOf(now)) return;
  throw new OptionError(
    `cannot resume with precision ${precisionOf(now)}: the run trained in ${precisionOf(saved)}; ` +
      `resume it with precision ${precisionOf(saved)} (--precision ${precisionOf(saved)}, or no --precision flag)`,
  );
}
