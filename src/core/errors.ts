/**
 * Typed errors. Every check that guards a kernel throws one of these in TypeScript, before any
 * backend (and so any native code) sees the input.
 */
export class XceptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A tensor or input has the wrong rank, size or dimensions. */
export class ShapeError extends XceptionError {}

/** An option is unknown, out of range or inconsistent with another option. */
export class OptionError extends XceptionError {}

/** A tensor was used after `dispose()`. */
export class DisposedError extends XceptionError {}

/** The requested backend cannot run here (not built, not loadable, wrong dtype). */
export class BackendError extends XceptionError {}

/** The native backend could not get the memory a kernel or plan needs (ERR_XCEPTION_NATIVE_OOM). */
export class OutOfMemoryError extends BackendError {}

export function shapeToString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function assertShape(cond: boolean, message: string): asserts cond {
  if (!cond) throw new ShapeError(message);
}

export function assertOption(cond: boolean, message: string): asserts cond {
  if (!cond) throw new OptionError(message);
}

export function isPositiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

/** `'a', 'b' or 'c'`: allowed values in a message. */
export function quotedChoices(choices: readonly (string | null)[]): string {
  const q = choices.map((c) => (c === null ? 'null' : `'${c}'`));
  return q.length < 2 ? q.join('') : `${q.slice(0, -1).join(', ')} or ${q[q.length - 1]}`;
}
