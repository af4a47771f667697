/** The flags that pick a model and its options, shared by summary, train, eval, predict and export: all from the options schema (models/options.ts). */
import { OptionError } from '../core/errors.js';
import { allowedText, defaultText, inRange, MODEL_NAMES, MODEL_OPTIONS, rangeText, type OptionSpec } from '../models/options.js';
import type { XceptionOptions } from '../models/xception/xception.js';
import { choiceFlag, intFlag, shapeFlag, type FlagSpec, type Parsed } from './args.js';

/** The model options the command line sets (all but code-only ones such as name). */
const FLAG_OPTIONS = MODEL_OPTIONS.filter((s): s is OptionSpec & { flag: string } => s.flag !== undefined);

export const MODEL_FLAGS: FlagSpec = {
  model: { type: 'string' },
  ...Object.fromEntries(FLAG_OPTIONS.map((s) => [s.flag, { type: s.kind === 'boolean' ? 'boolean' : 'string' }])),
} as FlagSpec;

/** The flag that sets each model option (for messages that must name the flag). */
export const MODEL_OPTION_FLAGS: Record<string, string> = Object.fromEntries(FLAG_OPTIONS.map((s) => [s.key, s.flag]));

/** Where --help's descriptions start, and the longest line a note is appended to. */
const HELP_COLUMN = 34;
const HELP_WIDTH = 110;

/** One flag's --help entry: the flag, its help lines and "(xception only; default …)". */
function flagHelp(spec: OptionSpec & { flag: string }, defaultOverride: string | undefined): string {
  const head = `  --${spec.flag}${spec.placeholder ? ` ${spec.placeholder}` : ''}`;
  const notes = [
    spec.group === 'model' && spec.models.length < MODEL_NAMES.length ? `${spec.models.join(', ')} only` : undefined,
    defaultOverride ?? defaultText(spec),
  ].filter((n) => n !== undefined);
  const lines = spec.help.split('\n');
  if (notes.length) {
    // The notes go on the help's last line when they fit, else on lines of their own.
    const noteText = `(${notes.join('; ')})`;
    const last = lines[lines.length - 1]!;
    if (HELP_COLUMN + last.length + 1 + noteText.split('\n')[0]!.length <= HELP_WIDTH) lines[lines.length - 1] = `${last} ${noteText}`;
    else lines.push(noteText);
  }
  const indent = ' '.repeat(HELP_COLUMN);
  const body = lines
    .join('\n')
    .split('\n')
    .map((l) => indent + l);
  if (head.length < HELP_COLUMN) body[0] = head.padEnd(HELP_COLUMN) + body[0]!.trimStart();
  else body.unshift(head);
  return body.join('\n');
}

/**
 * The model flags' --help, from the schema. `defaults` overrides how a default is stated, by
 * option key (train's defaults follow the data); `seedFlag` false where the command lists --seed
 * itself (train: it seeds more than the weights).
 */
export function modelFlagsHelp(defaults: Readonly<Record<string, string>> = {}, seedFlag = true): string {
  const entries = (group: OptionSpec['group']) =>
    FLAG_OPTIONS.filter((s) => s.group === group && (seedFlag || s.key !== 'seed')).map((s) => flagHelp(s, defaults[s.key]));
  return `Model options:
  --model NAME                    xception (default) or inception_v3 (Keras InceptionV3, the
                                  paper's baseline; the flags marked 'xception only' do not apply)
${entries('model').join('\n')}
Research switches (xception only; defaults are the paper's Xception):
${entries('research').join('\n')}`;
}

export const MODEL_FLAGS_HELP = modelFlagsHelp();

export interface ModelChoice {
  name: string;
  options: Record<string, unknown>;
}

/** A flag's value as the option's type, within the schema's bounds; undefined when not given. */
function flagValue(spec: OptionSpec & { flag: string }, v: string | boolean | undefined): unknown {
  if (v === undefined) return undefined;
  switch (spec.kind) {
    case 'boolean':
      return v ? false : undefined; // the flag turns a default-on switch off
    case 'int':
      return intFlag(spec.flag, v, spec.min, spec.max);
    case 'segments':
      return v === 'depthwise' ? 'depthwise' : intFlag(spec.flag, v, spec.min, spec.max);
    case 'choice':
      return choiceFlag(spec.flag, v, spec.choices!);
    case 'shape':
      return shapeFlag(spec.flag, v);
    case 'units':
      return unitsFlag(spec, v);
    case 'number': {
      const n = Number(v);
      if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n) || !inRange(spec, n)) {
        throw new OptionError(`--${spec.flag} must be a number in ${rangeText(spec)}, got '${String(v)}'`);
      }
      return n;
    }
    case 'string':
      return v;
  }
}

/** --fc-layers 4096,4096: comma-separated layer widths within the schema's bounds ('' or 'none' = no layers). */
function unitsFlag(spec: OptionSpec & { flag: string }, v: string | boolean): number[] {
  const text = typeof v === 'string' ? v.trim() : '';
  if (text === '' || text === 'none') return [];
  const nums = text.split(',').map((s) => (s.trim() === '' ? Number.NaN : Number(s)));
  if (nums.length > spec.maxCount! || !nums.every((n) => Number.isInteger(n) && inRange(spec, n))) {
    throw new OptionError(`--${spec.flag} must be ${allowedText(spec)} separated by commas (e.g. 4096,4096), got '${String(v)}'`);
  }
  return nums;
}

export function modelFromFlags(p: Parsed, defaults: Partial<XceptionOptions> = {}, defaultName = 'xception'): ModelChoice {
  const v = p.values;
  const name = (v['model'] as string | undefined) ?? defaultName;
  for (const spec of FLAG_OPTIONS) {
    if (v[spec.flag] !== undefined && !(spec.models as readonly string[]).includes(name)) {
      throw new OptionError(`--${spec.flag} applies only to --model ${spec.models.join(' or ')}, not to '${name}'`);
    }
  }
  const o: Record<string, unknown> = { ...defaults };
  for (const spec of FLAG_OPTIONS) {
    const value = flagValue(spec, v[spec.flag]);
    if (value !== undefined) o[spec.key] = value;
  }
  if (o['pooling'] !== undefined && o['includeTop'] !== false) throw new OptionError('--pooling applies only with --no-top');
  return { name, options: o };
}
