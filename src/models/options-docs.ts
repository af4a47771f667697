/**
 * README's table of the model options, rendered from the options schema (models/options.ts).
 * `npm run docs:options` rewrites the block between the markers; a test fails when it is stale.
 */
import { OptionError } from '../core/errors.js';
import { allowedText, defaultText, MAX_MODEL_PARAMS, MODEL_NAMES, MODEL_OPTIONS, type OptionSpec } from './options.js';

export const OPTIONS_BLOCK_START = '<!-- model-options:start -->';
export const OPTIONS_BLOCK_END = '<!-- model-options:end -->';

/** A table cell: one line, pipes escaped. */
const cell = (text: string): string => text.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|');

function optionRow(spec: OptionSpec): string {
  const flag = spec.flag ? `\`--${spec.flag}\`` : '(code only)';
  const stated = defaultText(spec)?.replace(/^default:? /, '') ?? (spec.kind === 'boolean' ? 'true' : '');
  const models = spec.models.length === MODEL_NAMES.length ? 'all' : spec.models.join(', ');
  const cells = [`\`${spec.key}\``, flag, allowedText(spec), stated, models, spec.help];
  return `| ${cells.map(cell).join(' | ')} |`;
}

/** One table: the research switches first (each defaults to the paper's Xception), then the rest. */
export function renderOptionsTable(): string {
  const specs = [...MODEL_OPTIONS.filter((s) => s.group === 'research'), ...MODEL_OPTIONS.filter((s) => s.group === 'model')];
  return [
    '| option | flag | values | default | models | what it does |',
    '| --- | --- | --- | --- | --- | --- |',
    ...specs.map(optionRow),
    '',
    `A boolean flag such as \`--no-top\` sets its option to false. Whatever the options, a model may have at most ${(MAX_MODEL_PARAMS / 1e6).toLocaleString('en-US')} million parameters (estimated before anything is built).`,
  ].join('\n');
}

/** README's text between the markers; throws when the markers are missing. */
export function optionsBlockOf(readme: string): string {
  const start = readme.indexOf(OPTIONS_BLOCK_START);
  const end = readme.indexOf(OPTIONS_BLOCK_END);
  if (start < 0 || end < start) throw new OptionError(`README has no ${OPTIONS_BLOCK_START} … ${OPTIONS_BLOCK_END} block`);
  return readme.slice(start + OPTIONS_BLOCK_START.length, end).replace(/^\n|\n$/g, '');
}

/** README with its options block replaced by the schema's table. */
export function withOptionsTable(readme: string): string {
  optionsBlockOf(readme); // the markers are there
  const start = readme.indexOf(OPTIONS_BLOCK_START) + OPTIONS_BLOCK_START.length;
  return `${readme.slice(0, start)}\n${renderOptionsTable()}\n${readme.slice(readme.indexOf(OPTIONS_BLOCK_END))}`;
}
