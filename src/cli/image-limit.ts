/** --max-image-pixels, shared by the commands that read image files (predict, eval, train). */
import { MAX_IMAGE_PIXELS, setDefaultImagePixelLimit } from '../data/image-file.js';
import { type FlagSpec, intFlag, type Parsed } from './args.js';

export const IMAGE_LIMIT_FLAGS: FlagSpec = { 'max-image-pixels': { type: 'string' } };

/** The flag's help lines, its text starting at `column` as in the command's other flags. */
export function imageLimitHelp(column: number): string {
  const flag = '  --max-image-pixels N'.padEnd(column);
  return `${flag}refuse an image whose header declares more pixels, before decoding\n${' '.repeat(column)}(default ${MAX_IMAGE_PIXELS.toLocaleString('en-US')})`;
}

/** Applies --max-image-pixels to every image this process reads. */
export function applyImageLimitFlag(values: Parsed['values']): void {
  const n = intFlag('max-image-pixels', values['max-image-pixels'], 1);
  if (n !== undefined) setDefaultImagePixelLimit(n);
}
