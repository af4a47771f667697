/**
 * How an image file becomes a network input: one definition shared by training, evaluation and
 * prediction, recorded with the weights so that a model is always fed as it was trained.
 *
 * - `resize`: 'center-crop' scales the shorter side to the model input and crops the centre (what
 *   the image-folder trainer has always done); 'stretch' resizes to the input without keeping the
 *   aspect ratio (Keras's `image.load_img(target_size=…)`, what the official ImageNet weights
 *   were evaluated with in Keras's examples).
 * - `interpolation`: the resampling filter.
 * - `scaling`: pixels 0..255 → inputs (the model's `preprocess_input`, see transforms.ts).
 */
import { OptionError } from '../core/errors.js';
import { PREPROCESSINGS, type Preprocessing } from './transforms.js';

export type ResizePolicy = 'center-crop' | 'stretch';
export type ResizeInterpolation = 'nearest' | 'bilinear';

export const RESIZE_POLICIES: readonly ResizePolicy[] = ['center-crop', 'stretch'];
export const RESIZE_INTERPOLATIONS: readonly ResizeInterpolation[] = ['nearest', 'bilinear'];

export interface ImagePreprocessing {
  resize: ResizePolicy;
  interpolation: ResizeInterpolation;
  scaling: Preprocessing;
}

/** What this project's own training uses for image files (recorded in every run it writes). */
export function trainingPreprocessing(scaling: Preprocessing): ImagePreprocessing {
  return { resize: 'center-crop', interpolation: 'bilinear', scaling };
}

/** Keras's `load_img` + `preprocess_input`: the default for weight files that record nothing. */
export function kerasPreprocessing(scaling: Preprocessing): ImagePreprocessing {
  return { resize: 'stretch', interpolation: 'nearest', scaling };
}

/**
 * Checks an ImagePreprocessing from anywhere (an option object, a file's metadata) and returns a
 * clean copy; `source` names where it came from in the error.
 */
export function validateImagePreprocessing(p: unknown, source = 'preprocessing'): ImagePreprocessing {
  if (p === null || typeof p !== 'object' || Array.isArray(p))
    throw new OptionError(`${source}: expected an object {resize, interpolation, scaling}`);
  const o = p as Record<string, unknown>;
  const unknown = Object.keys(o).filter((k) => !['resize', 'interpolation', 'scaling'].includes(k));
  if (unknown.length > 0) throw new OptionError(`${source}: unknown field '${unknown[0]}'`);
  const pick = <T extends string>(k: string, allowed: readonly T[]): T => {
    const v = o[k];
    if (typeof v !== 'string' || !allowed.includes(v as T))
      throw new OptionError(`${source}: ${k} must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
    return v as T;
  };
  return {
    resize: pick('resize', RESIZE_POLICIES),
    interpolation: pick('interpolation', RESIZE_INTERPOLATIONS),
    scaling: pick('scaling', PREPROCESSINGS),
  };
}

/** One line for start-up messages, e.g. "center-crop, bilinear, x/127.5 − 1". */
export function describeImagePreprocessing(p: ImagePreprocessing): string {
  const scaling = p.scaling === 'xception' || p.scaling === 'inception_v3' ? 'x/127.5 − 1' : p.scaling === 'unit' ? 'x/255' : 'raw 0..255';
  return `${p.resize}, ${p.interpolation}, ${scaling}`;
}
