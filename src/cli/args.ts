/** Argument parsing shared by the subcommands: strict (unknown flags are errors), typed values. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { canonicalBackendName } from '../core/engine.js';
import { OptionError } from '../core/errors.js';

export type FlagSpec = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

export function parse(command: string, argv: string[], options: FlagSpec, allowPositionals = false): Parsed {
  try {
    const r = parseArgs({
      args: joinNegativeValues(argv, options),
      options,
      strict: true,
      allowPositionals,
      allowNegative: false,
    } as ParseArgsConfig);
    return { values: r.values as Parsed['values'], positionals: r.positionals };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    // parseArgs calls a flag followed by another flag "ambiguous", over three lines: say what is wrong.
    const ambiguous = /Option '([^']+)' argument is ambiguous/.exec(msg);
    const line = ambiguous ? `${ambiguous[1]} needs a value` : msg.replace(/\. To specify a positional argument.*$/s, '').split('\n')[0];
    throw new OptionError(`${command}: ${line} (see \`xception ${command} --help\`)`);
  }
}

/**
 * `--lr -1` → `--lr=-1`: node:util parseArgs reads an argument starting with '-' as a flag, so a
 * negative number after a flag that takes a value would be "ambiguous" rather than range-checked.
 */
function joinNegativeValues(argv: string[], options: FlagSpec): string[] {
  const joined: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    const takesValue = arg.startsWith('--') && !arg.includes('=') && options[arg.slice(2)]?.type === 'string';
    if (takesValue && next !== undefined && /^-\.?\d/.test(next)) {
      joined.push(`${arg}=${next}`);
      i++;
    } else {
      joined.push(arg);
    }
  }
  return joined;
}

export function intFlag(name: string, v: string | boolean | undefined, min = 1, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || !/^-?\d+$/.test(v.trim()) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `in [${min}, ${max}]`;
    throw new OptionError(`--${name} must be an integer ${range}, got '${String(v)}'`);
  }
  return n;
}

export function numberFlag(name: string, v: string | boolean | undefined, min = -Infinity, max = Infinity): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    throw new OptionError(`--${name} must be a number in [${min}, ${max}], got '${String(v)}'`);
  }
  return n;
}

export function choiceFlag<T extends string>(name: string, v: string | boolean | undefined, choices: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !choices.includes(v as T))
    throw new OptionError(`--${name} must be one of ${choices.join(', ')}, got '${String(v)}'`);
  return v as T;
}

/** '299,299,3' → [299, 299, 3] */
export function shapeFlag(name: string, v: string | boolean | undefined): [number, number, number] | undefined {
  if (v === undefined) return undefined;
  const parts = typeof v === 'string' ? v.split(/[,x×]/).map((s) => s.trim()) : [];
  const nums = parts.map(Number);
  if (nums.length !== 3 || !nums.every((n) => Number.isInteger(n) && n > 0)) {
    throw new OptionError(`--${name} must be HEIGHT,WIDTH,CHANNELS (e.g. 299,299,3), got '${String(v)}'`);
  }
  return nums as [number, number, number];
}

/** --backend native|wasm|reference; 'onednn', the native backend's old name, is accepted too. */
export function backendFlag(v: string | boolean | undefined): 'native' | 'reference' | 'wasm' | undefined {
  return choiceFlag('backend', typeof v === 'string' ? canonicalBackendName(v) : v, ['native', 'reference', 'wasm'] as const);
}
