import { OptionError } from '../../core/errors.js';
import { checkCommitted } from '../../experiments/check.js';
import { runExperiment, type ExperimentRunOptions } from '../../experiments/runner.js';
import { BUDGET_ASSUMPTIONS, getRecipe, RECIPES } from '../../experiments/recipes.js';
import { writeReport } from '../../experiments/report.js';
import { makeOutputDir } from '../../io/output-paths.js';
import { Progress } from '../../train/progress.js';
import { backendFlag, type FlagSpec, intFlag, type Parsed, parse } from '../args.js';
import { listenForStop } from '../stop-signals.js';

export const EXPERIMENT_HELP = `Usage: xception experiment <list|run|report> [options]

The paper's experiments as named recipes; each trains every variant on several seeds.
  xception experiment list [--json]        the recipes, their variants and default budgets
  xception experiment run NAME [options]   run one recipe (or 'all' of them, in order)
  xception experiment report DIR           write report.md, report.html and figures/ for an
                                           experiment folder (or a folder of them)
Run 'xception experiment <list|run|report> --help' for each one's options.
`;

export const EXPERIMENT_LIST_HELP = `Usage: xception experiment list [--json]

Lists the recipes. --json prints an array of {name, description, defaultBudgetMinutes}.
Budgets are estimates for a 2-core machine with the native backend (${BUDGET_ASSUMPTIONS.baselineImagesPerSec} images/s for the
baseline network, calibrated on the committed Fashion-MNIST runs), not measurements.
`;

export const EXPERIMENT_RUN_HELP = `Usage: xception experiment run NAME [options]
       xception experiment run --check DIR [--check-seeds K] [--out OUT] [--backend NAME]

Trains every variant × seed of recipe NAME (or 'all' recipes) as its own run folder,
OUT/NAME/<variant>/seed-<k>/, then measures the variants' training speed side by side
(OUT/NAME/speed.json: interleaved rounds, so the machine's load weighs on all alike) and
writes the report into OUT/NAME. Ctrl-C checkpoints the
current run; --resume continues: finished runs are skipped, the interrupted one resumes.

Options:
  --dataset SPEC       fashion-mnist (default) | cifar10:DIR | folder:DIR | mnist:DIR …
  --epochs N           override the recipe's epochs
  --seeds K            override the recipe's number of seeds (at least 2)
  --limit-train N      use only the first N training images (quicker runs)
  --limit-test N       use only the first N test images
  --batch-size B       override the batch size
  --image-size N       resize images to N×N (image folders)
  --out DIR            parent folder (default experiments)
  --resume             continue OUT/NAME (--seeds and --epochs may grow)
  --backend NAME       native | wasm | reference
  --override KEY=VALUE set a model option on every variant (repeatable; VALUE is JSON or a
                       string), e.g. --override middleBlocks=1 for a smoke test. The networks
                       are then not the recipe's; the report says so.
  --no-speed           skip the side-by-side speed measurement (the report then uses the
                       runs' own steps/s)
  --no-report          do not write the report at the end
  --check DIR          instead of running a recipe: re-run the first K seeds of every variant
                       of the committed result(s) in DIR (an experiment folder or a folder of
                       them) with their settings, into OUT/check/, and say per claim whether
                       the verdict still holds on this machine and build (re-runs inside the
                       committed spread, verdict unchanged); writes OUT/check/check.json.
                       Exit status 1 when some verdict does not hold.
  --check-seeds K      seeds re-run per variant with --check (default 2)
  -h, --help
`;

export const EXPERIMENT_REPORT_HELP = `Usage: xception experiment report DIR [--no-png]

Reads an experiment folder (OUT/NAME) or a folder of them (OUT) and writes DIR/report.md,
DIR/report.html (self-contained, figures inlined) and DIR/figures/*.svg and *.png: curves of
validation accuracy and loss against steps and training time (mean ± 1 sd over seeds), a table
of final accuracy with 95% confidence intervals, parameter counts and steps/s, and a paragraph
per experiment comparing the outcome with the paper's claim.
`;

async function listCommand(argv: string[], out: (s: string) => void): Promise<number> {
  const p = parse('experiment list', argv, { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } });
  if (p.values['help']) {
    out(EXPERIMENT_LIST_HELP);
    return 0;
  }
  if (p.values['json']) {
    out(
      JSON.stringify(RECIPES.map((r) => ({ name: r.name, description: r.description, defaultBudgetMinutes: r.defaultBudgetMinutes }))) +
        '\n',
    );
    return 0;
  }
  let total = 0;
  for (const r of RECIPES) {
    total += r.defaultBudgetMinutes;
    out(
      `${r.name}  (~${r.defaultBudgetMinutes} min: ${r.variants.length} variants × ${r.training.seeds} seeds, ${r.training.epochs} epoch${r.training.epochs === 1 ? '' : 's'})\n`,
    );
    out(`  ${r.description}\n`);
    for (const v of r.variants) out(`    ${v.name.padEnd(18)} ${v.label}\n`);
  }
  out(`all ${RECIPES.length}: ~${total} min (estimate)\n`);
  return 0;
}

const RUN_FLAGS: FlagSpec = {
  dataset: { type: 'string' },
  epochs: { type: 'string' },
  seeds: { type: 'string' },
  'limit-train': { type: 'string' },
  'limit-test': { type: 'string' },
  'batch-size': { type: 'string' },
  'image-size': { type: 'string' },
  out: { type: 'string' },
  resume: { type: 'boolean' },
  backend: { type: 'string' },
  override: { type: 'string', multiple: true },
  'no-report': { type: 'boolean' },
  'no-speed': { type: 'boolean' },
  check: { type: 'string' },
  'check-seeds': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

async function runCommand(argv: string[], out: (s: string) => void): Promise<number> {
  const p = parse('experiment run', argv, RUN_FLAGS, true);
  const v = p.values;
  if (v['help']) {
    out(EXPERIMENT_RUN_HELP);
    return 0;
  }
  if (v['check'] !== undefined) return checkRun(p, out);
  if (v['check-seeds'] !== undefined) throw new OptionError('experiment run: --check-seeds goes with --check DIR');
  if (p.positionals.length !== 1)
    throw new OptionError(`experiment run: give exactly one recipe name (known: ${RECIPES.map((r) => r.name).join(', ')}, or all)`);
  const name = p.positionals[0]!;
  const names = name === 'all' ? RECIPES.map((r) => r.name) : [getRecipe(name).name];
  const opts = experimentRunOptions(v, () => stop.requested()); // `stop` is set below, before any run starts
  makeOutputDir(opts.outDir);
  const stop = listenForStop('experiment');
  try {
    for (const n of names) {
      const r = await runExperiment(n, opts);
      if (r.interrupted) {
        out(`${n}: interrupted; continue with: xception experiment run ${name} --resume --out ${opts.outDir}\n`);
        return stop.exitCode();
      }
      out(`${n}: ${r.trained} run(s) trained, ${r.skipped} finished earlier; folder ${r.dir}\n`);
      if (!v['no-report']) await reportRun(n, r.dir, out);
    }
    return 0;
  } finally {
    stop.dispose();
  }
}

/** `run --check DIR`: re-runs a sample of a committed result and prints, per claim, whether its verdict holds. */
async function checkRun(p: Parsed, out: (s: string) => void): Promise<number> {
  const v = p.values;
  if (p.positionals.length) throw new OptionError(`experiment run --check: give no recipe name (got '${p.positionals.join(' ')}')`);
  const seeds = intFlag('check-seeds', v['check-seeds'], 1);
  const backend = backendFlag(v['backend']);
  const stop = listenForStop('experiment');
  try {
    const report = await checkCommitted(v['check'] as string, {
      outDir: (v['out'] as string | undefined) ?? 'experiments',
      progress: new Progress(process.stderr),
      shouldStop: () => stop.requested(),
      ...(seeds !== undefined ? { seeds } : {}),
      ...(backend ? { backend } : {}),
    });
    for (const c of report.claims) out(`${c.text}\n`);
    if (report.interrupted) {
      out('check interrupted; run the same command again to continue (finished re-runs are kept)\n');
      return stop.exitCode();
    }
    return report.claims.every((c) => c.holds) ? 0 : 1;
  } finally {
    stop.dispose();
  }
}

/** The run flags as runExperiment options, each checked. */
function experimentRunOptions(v: Parsed['values'], shouldStop: () => boolean): ExperimentRunOptions {
  const backend = backendFlag(v['backend']);
  const opts: ExperimentRunOptions = {
    outDir: (v['out'] as string | undefined) ?? 'experiments',
    resume: Boolean(v['resume']),
    progress: new Progress(process.stderr),
    shouldStop,
    measureSpeed: !v['no-speed'],
  };
  if (v['dataset'] !== undefined) opts.dataset = v['dataset'] as string;
  const ints = [
    ['epochs', 'epochs'],
    ['seeds', 'seeds'],
    ['limit-train', 'limitTrain'],
    ['limit-test', 'limitTest'],
    ['batch-size', 'batchSize'],
    ['image-size', 'imageSize'],
  ] as const;
  for (const [flag, key] of ints) {
    const n = intFlag(flag, v[flag], flag === 'seeds' ? 2 : 1);
    if (n !== undefined) opts[key] = n;
  }
  if (backend) opts.backend = backend;
  const overrides = (v['override'] as unknown as string[] | undefined) ?? [];
  if (overrides.length) opts.modelOverrides = Object.fromEntries(overrides.map(parseOverride));
  return opts;
}

/** Writes a finished experiment's report and prints where it went and the verdict. */
async function reportRun(name: string, dir: string, out: (s: string) => void): Promise<void> {
  const rep = await writeReport(dir);
  out(`${name}: report ${rep.markdownFile} and ${rep.htmlFile}\n`);
  const verdict = rep.summaries[0]?.verdict;
  if (verdict) out(`${name}: ${verdict.verdict} with the paper\n`);
}

function parseOverride(text: string): [string, unknown] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new OptionError(`--override must be KEY=VALUE (e.g. middleBlocks=1), got '${text}'`);
  const key = text.slice(0, eq),
    raw = text.slice(eq + 1);
  try {
    return [key, JSON.parse(raw)];
  } catch {
    return [key, raw];
  }
}

async function reportCommand(argv: string[], out: (s: string) => void): Promise<number> {
  const p = parse('experiment report', argv, { 'no-png': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, true);
  if (p.values['help']) {
    out(EXPERIMENT_REPORT_HELP);
    return 0;
  }
  if (p.positionals.length !== 1) throw new OptionError('experiment report: give exactly one folder (OUT/NAME or OUT)');
  const rep = await writeReport(p.positionals[0]!, { png: !p.values['no-png'] });
  for (const s of rep.summaries)
    out(
      `${s.manifest.recipe}: ${s.finishedRuns}/${s.expectedRuns} runs; ${s.verdict ? `${s.verdict.verdict} with the paper` : 'not judged (missing variants)'}\n`,
    );
  out(`wrote ${rep.markdownFile}, ${rep.htmlFile} and ${rep.figureFiles.length} figure files\n`);
  return 0;
}

export async function experimentCommand(argv: string[], out: (s: string) => void): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h' || sub === 'help') {
    out(EXPERIMENT_HELP);
    return 0;
  }
  switch (sub) {
    case 'list':
      return listCommand(rest, out);
    case 'run':
      return runCommand(rest, out);
    case 'report':
      return reportCommand(rest, out);
    default:
      throw new OptionError(`experiment: unknown subcommand '${sub}' (list, run, report)`);
  }
}
