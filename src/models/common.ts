import { OptionError } from '../core/errors.js';

/** Rejects misspelled or unknown options by name, before anything is built. */
export function checkOptions(what: string, options: Record<string, unknown>, known: readonly string[]): void {
  if (options === null || typeof options !== 'object') throw new OptionError(`${what}: options must be an object`);
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      const near = known.find((k) => k.toLowerCase() === key.toLowerCase().replace(/[-_]/g, ''));
      throw new OptionError(`${what}: unknown option '${key}'${near ? ` (did you mean '${near}'?)` : ''}; known options: ${known.join(', ')}`);
    }
  }
}

/**
 * Keras-style automatic names, counted per model and starting at 1 (`conv2d_1`,
 * `batch_normalization_1`, `add_1`, …), as in the official Xception weight files.
 */
export class NameCounter {
  private counts = new Map<string, number>();
  next(prefix: string): string {
    const n = (this.counts.get(prefix) ?? 0) + 1;
    this.counts.set(prefix, n);
    return `${prefix}_${n}`;
  }
}
