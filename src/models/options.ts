/**
 * The one declaration of every model option: its key, CLI flag, type, allowed values and caps,
 * default, help and the models that take it. Option checking and default filling
 * (resolveModelOptions), the CLI flags (cli/model-flags.ts), the --help text and README's options
 * table (options-docs.ts) all derive from MODEL_OPTIONS.
 *
 * The caps bound what anyone may ask to build — a model_config or run state from an untrusted
 * file included — so that a hostile file fails with a typed error before anything is allocated:
 *   classes ≤ 100,000 · input height/width ≤ 4096, channels ≤ 64 · width ≤ 4 ·
 *   middleBlocks ≤ 64 · channelMultiple ≤ 512 · segments ≤ 8192 (the widest layer at width 4;
 *   each layer's channels must also be a multiple of it) · name ≤ 200 characters · and, since
 *   the caps multiply (width 4 with 100,000 classes is a 3 GB classifier), at most
 *   MAX_MODEL_PARAMS parameters in all, estimated from the options before anything is built.
 */
import { OptionError, quotedChoices, ShapeError } from '../core/errors.js';
import { INTERMEDIATE_ACTIVATIONS, SEPARABLE_ORDERS } from '../nn/layers/convolutional.js';
import { checkOptions } from './common.js';

export const MODEL_NAMES = ['xception', 'inception_v3', 'sepvgg'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

/**
 * boolean: a switch that defaults to true, turned off by its flag (--no-top); shape: [H, W, C];
 * segments: a positive integer or 'depthwise'; units: a list of layer widths (min/max bound each,
 * maxCount the list's length); string: code only (the model's name).
 */
export type OptionKind = 'boolean' | 'int' | 'number' | 'choice' | 'shape' | 'segments' | 'units' | 'string';

export type OptionValue = boolean | number | string | null | readonly number[];

export interface OptionSpec {
  /** The camelCase key in code and in records. */
  key: string;
  /** CLI flag without the dashes; absent for code-only options. */
  flag?: string;
  /** How the flag's value reads in --help (N, X, H,W,C). */
  placeholder?: string;
  kind: OptionKind;
  /** choice: the allowed values (null as well when nullable). */
  choices?: readonly string[];
  nullable?: boolean;
  /** int / number / segments: bounds (inclusive unless marked); string: max is the length cap. */
  min?: number;
  max?: number;
  minExclusive?: boolean;
  maxExclusive?: boolean;
  /** units: the most entries the list may hold. */
  maxCount?: number;
  /** shape: the largest height/width and channel count. */
  maxSide?: number;
  maxChannels?: number;
  /** The default; a function when it depends on the model or on other options. */
  default: OptionValue | ((model: ModelName, resolved: Readonly<Record<string, unknown>>) => OptionValue);
  /** How --help and README state a default that is a function, or a fuller wording. */
  defaultText?: string;
  /** One or more lines ('\n'); --help and README show it. */
  help: string;
  models: readonly ModelName[];
  /** 'research': the paper's switches; 'model': Keras's and the size options. */
  group: 'model' | 'research';
}

const BOTH = MODEL_NAMES;
const XCEPTION = ['xception'] as const;
/** Switches that xception and the VGG-style separable network share (the residual counter-example). */
const XCEPTION_AND_SEPVGG = ['xception', 'sepvgg'] as const;

/** The input size with no inputShape given: Keras's 299×299×3, or 32×32×3 with the small stem. */
const defaultInputShape = (_m: ModelName, o: Readonly<Record<string, unknown>>): number[] =>
  o['stem'] === 'small' ? [32, 32, 3] : [299, 299, 3];

/** Every model option, in the order of records and --help. */
export const MODEL_OPTIONS: readonly OptionSpec[] = [
  {
    key: 'includeTop',
    flag: 'no-top',
    kind: 'boolean',
    default: true,
    models: BOTH,
    group: 'model',
    help: 'drop the classifier (global pooling + Dense)',
  },
  {
    key: 'inputShape',
    flag: 'input-shape',
    placeholder: 'H,W,C',
    kind: 'shape',
    maxSide: 4096,
    maxChannels: 64,
    models: BOTH,
    group: 'model',
    default: defaultInputShape,
    defaultText: 'default 299,299,3; 32,32,3 with --stem small',
    help: 'input size',
  },
  {
    key: 'pooling',
    flag: 'pooling',
    placeholder: 'avg|max',
    kind: 'choice',
    choices: ['avg', 'max'],
    nullable: true,
    default: null,
    models: BOTH,
    group: 'model',
    help: 'with --no-top: global pooling of the feature map',
    defaultText: 'default none',
  },
  {
    key: 'classes',
    flag: 'classes',
    placeholder: 'N',
    kind: 'int',
    min: 1,
    max: 100_000,
    default: 1000,
    models: BOTH,
    group: 'model',
    help: 'classifier outputs',
  },
  {
    key: 'classifierActivation',
    flag: 'classifier-activation',
    placeholder: 'softmax|linear',
    kind: 'choice',
    choices: ['softmax', 'sigmoid', 'linear'],
    default: 'softmax',
    models: BOTH,
    group: 'model',
    help: 'activation of the classifier; sigmoid = one independent\nprobability per class (multi-label training)',
  },
  {
    key: 'fcLayers',
    flag: 'fc-layers',
    placeholder: 'N,N',
    kind: 'units',
    min: 1,
    max: 16_384,
    maxCount: 8,
    default: [],
    defaultText: 'default none',
    models: BOTH,
    group: 'model',
    help: "Dense+ReLU layers fc1, fc2, … between the global pooling\nand the classifier (the paper's JFT head: 4096,4096)",
  },
  {
    key: 'width',
    flag: 'width',
    placeholder: 'X',
    kind: 'number',
    min: 0,
    minExclusive: true,
    max: 4,
    default: 1,
    models: BOTH,
    group: 'model',
    help: 'width multiplier on every channel count',
  },
  {
    key: 'dropout',
    flag: 'dropout',
    placeholder: 'R',
    kind: 'number',
    min: 0,
    max: 1,
    maxExclusive: true,
    default: 0,
    models: BOTH,
    group: 'model',
    help: 'dropout before the classifier; the paper used 0.5 on ImageNet',
  },
  {
    key: 'stem',
    flag: 'stem',
    placeholder: 'imagenet|small',
    kind: 'choice',
    choices: ['imagenet', 'small'],
    default: 'imagenet',
    models: BOTH,
    group: 'model',
    help:
      "'small' keeps small inputs (28×28, 32×32) viable: xception\n" +
      'keeps the size through block1; inception_v3 runs its stem\n' +
      "convs at stride 1 'same' with one 'same' max pool (32 → 16)",
  },
  {
    key: 'bnMomentum',
    flag: 'bn-momentum',
    placeholder: 'M',
    kind: 'number',
    min: 0,
    max: 1,
    maxExclusive: true,
    default: 0.99,
    models: BOTH,
    group: 'model',
    help: 'batch-norm moving-average momentum; 0.9 suits runs of a few\nthousand steps',
    defaultText: "default Keras's 0.99",
  },
  {
    key: 'residual',
    flag: 'no-residual',
    kind: 'boolean',
    default: true,
    models: XCEPTION_AND_SEPVGG,
    group: 'research',
    help: 'remove the residual connections (paper figure 9)',
  },
  {
    key: 'intermediateActivation',
    flag: 'intermediate-activation',
    placeholder: INTERMEDIATE_ACTIVATIONS.join('|'),
    kind: 'choice',
    choices: INTERMEDIATE_ACTIVATIONS,
    default: 'none',
    models: XCEPTION,
    group: 'research',
    help: 'non-linearity between depthwise and pointwise (figure 10)',
  },
  {
    key: 'order',
    flag: 'order',
    placeholder: SEPARABLE_ORDERS.join('|'),
    kind: 'choice',
    choices: SEPARABLE_ORDERS,
    default: 'depthwise-first',
    models: XCEPTION,
    group: 'research',
    help: 'pointwise-first is the "extreme Inception" order',
  },
  {
    key: 'segments',
    flag: 'segments',
    placeholder: 'N|depthwise',
    kind: 'segments',
    min: 1,
    max: 8192,
    default: 'depthwise',
    models: XCEPTION,
    group: 'research',
    help: 'channel segments of each spatial convolution:\n1 = regular convolution … depthwise = one per channel',
  },
  {
    key: 'middleBlocks',
    flag: 'middle-blocks',
    placeholder: 'N',
    kind: 'int',
    min: 0,
    max: 64,
    default: 8,
    models: XCEPTION,
    group: 'model',
    help: 'middle-flow blocks',
  },
  {
    key: 'channelMultiple',
    flag: 'channel-multiple',
    placeholder: 'N',
    kind: 'int',
    min: 1,
    max: 512,
    default: 1,
    models: XCEPTION,
    group: 'model',
    help: 'round channel counts to multiples of N',
  },
  {
    key: 'seed',
    flag: 'seed',
    placeholder: 'S',
    kind: 'int',
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    default: 0,
    models: BOTH,
    group: 'model',
    help: 'weight initialization seed',
  },
  {
    key: 'name',
    kind: 'string',
    max: 200,
    default: (m) => m,
    defaultText: "the model's name",
    models: BOTH,
    group: 'model',
    help: 'name of the model (code only)',
  },
];

/** The options `model` accepts, in MODEL_OPTIONS order. */
export function modelOptionSpecs(model: ModelName): OptionSpec[] {
  return MODEL_OPTIONS.filter((s) => s.models.includes(model));
}

export function optionSpec(key: string): OptionSpec {
  const spec = MODEL_OPTIONS.find((s) => s.key === key);
  if (!spec) throw new OptionError(`no model option '${key}'`);
  return spec;
}

/** A value as --help and README write it: 299,299,3 · none · 0.25. */
export function formatOptionValue(v: unknown): string {
  if (v === null) return 'none';
  if (Array.isArray(v)) return v.join(',');
  return String(v);
}

/** The default as --help and README state it ('default 8'); booleans switched off by a flag state none. */
export function defaultText(spec: OptionSpec): string | undefined {
  if (spec.defaultText !== undefined) return spec.defaultText;
  if (spec.kind === 'boolean') return undefined;
  return `default ${formatOptionValue(spec.default)}`;
}

/** '[0, 1)', '(0, 4]', '[1, 100000]' */
export function rangeText(spec: OptionSpec): string {
  return `${spec.minExclusive ? '(' : '['}${spec.min}, ${spec.max}${spec.maxExclusive ? ')' : ']'}`;
}

/** Whether n lies within the spec's bounds. */
export function inRange(spec: OptionSpec, n: number): boolean {
  const lo = spec.min ?? -Infinity;
  const hi = spec.max ?? Infinity;
  return (spec.minExclusive ? n > lo : n >= lo) && (spec.maxExclusive ? n < hi : n <= hi);
}

/** The allowed values in words, for messages and README: "'avg', 'max' or null", 'an integer in [1, 100000]'. */
export function allowedText(spec: OptionSpec): string {
  switch (spec.kind) {
    case 'boolean':
      return 'true or false';
    case 'int':
      return `an integer in ${rangeText(spec)}`;
    case 'number':
      return `in ${rangeText(spec)}`;
    case 'choice':
      return quotedChoices([...spec.choices!, ...(spec.nullable ? [null] : [])]);
    case 'segments':
      return `'depthwise' or an integer in ${rangeText(spec)}`;
    case 'shape':
      return `[H, W, C] of positive integers with H, W ≤ ${spec.maxSide} and C ≤ ${spec.maxChannels}`;
    case 'units':
      return `up to ${spec.maxCount} integers in ${rangeText(spec)}`;
    case 'string':
      return `a string of 1 to ${spec.max} characters`;
  }
}

/** Whether a value is one the spec allows (caps included). */
export function isAllowed(spec: OptionSpec, v: unknown): boolean {
  const isInt = (n: unknown): n is number => Number.isInteger(n);
  switch (spec.kind) {
    case 'boolean':
      return typeof v === 'boolean';
    case 'int':
      return isInt(v) && inRange(spec, v);
    case 'number':
      return typeof v === 'number' && inRange(spec, v);
    case 'choice':
      return (spec.nullable && v === null) || (typeof v === 'string' && spec.choices!.includes(v));
    case 'segments':
      return v === 'depthwise' || (isInt(v) && inRange(spec, v));
    case 'shape':
      return (
        Array.isArray(v) &&
        v.length === 3 &&
        v.every((d) => isInt(d) && d >= 1) &&
        v[0] <= spec.maxSide! &&
        v[1] <= spec.maxSide! &&
        v[2] <= spec.maxChannels!
      );
    case 'units':
      return Array.isArray(v) && v.length <= spec.maxCount! && v.every((d) => isInt(d) && inRange(spec, d));
    case 'string':
      return typeof v === 'string' && v.length >= 1 && v.length <= spec.max!;
  }
}

/** Throws the typed error for a value the spec does not allow (ShapeError for shapes). */
export function checkOptionValue(what: string, spec: OptionSpec, v: unknown): void {
  if (isAllowed(spec, v)) return;
  const got = spec.kind === 'boolean' ? '' : `, got ${JSON.stringify(v)?.slice(0, 60)}`;
  const message = `${what}: ${spec.key} must be ${allowedText(spec)}${got}`;
  throw spec.kind === 'shape' ? new ShapeError(message) : new OptionError(message);
}

/**
 * Checks every option of `model` against the schema (unknown keys, types, choices, caps) and fills
 * in the defaults, allocating nothing. 'backend' passes through unchecked (code only, never recorded).
 */
export function resolveModelOptions(model: ModelName, options: Record<string, unknown>): Record<string, unknown> {
  const specs = modelOptionSpecs(model);
  checkOptions(model, options, [...specs.map((s) => s.key), 'backend']);
  const resolved: Record<string, unknown> = {};
  // Plain defaults first, so that a default depending on other options sees them resolved.
  const ordered = [...specs.filter((s) => typeof s.default !== 'function'), ...specs.filter((s) => typeof s.default === 'function')];
  for (const spec of ordered) {
    const given = options[spec.key];
    const fallback = spec.default;
    const value = given !== undefined ? given : typeof fallback === 'function' ? fallback(model, resolved) : fallback;
    checkOptionValue(model, spec, value);
    resolved[spec.key] = Array.isArray(value) ? [...value] : value;
  }
  return Object.fromEntries(specs.map((s) => [s.key, resolved[s.key]]));
}

/** At most this many parameters (2 GB of float32): Keras's Xception at width 4 has about 340 million. */
export const MAX_MODEL_PARAMS = 500_000_000;

/** Refuses options whose model would have more than MAX_MODEL_PARAMS parameters (`params` estimated, nothing built). */
export function checkModelSize(what: string, params: number): void {
  if (params <= MAX_MODEL_PARAMS) return;
  throw new OptionError(
    `${what}: these options ask for about ${Math.round(params / 1e6).toLocaleString('en-US')} million parameters; ` +
      `at most ${(MAX_MODEL_PARAMS / 1e6).toLocaleString('en-US')} million are allowed`,
  );
}
