/**
 * `experiment run --check DIR`: does a committed result's verdict hold on this machine and build?
 * Re-runs a sample of its runs (the first K seeds of every variant, same settings) and, per claim,
 * asks two questions:
 *   1. does each re-run land inside the committed runs' prediction interval for its variant (where
 *      one more seed would land if only chance differed; Bonferroni-widened over the re-runs, so
 *      the whole check raises a false alarm about 5% of the time)?
 *   2. is the verdict unchanged when the re-runs replace the committed runs of their seeds?
 * The verdict holds when both answers are yes. Seeds fix data order and initialization but not
 * the floating-point rounding of another CPU or oneDNN build (provenance.ts), so re-runs are
 * expected to differ in their digits, not in their distribution.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setBackend } from '../core/engine.js';
import { OptionError } from '../core/errors.js';
import { writeFileAtomicSync } from '../io/atomic.js';
import { makeOutputDir } from '../io/output-paths.js';
import { hasCheckpoint } from '../train/checkpoint.js';
import { Progress } from '../train/progress.js';
import { train } from '../train/trainer.js';
import { findExperimentDirs, judgeClaim, type VariantOutcome, type VerdictWord } from './report.js';
import { getRecipe, type Claim, type Variant } from './recipes.js';
import {
  ExperimentError,
  judgedValue,
  readFinishedRun,
  readManifest,
  readResults,
  recordRunResult,
  runConfig,
  runDir,
  type ExperimentManifest,
  type RunResult,
} from './runner.js';
import { predictionInterval } from './stats.js';

export interface RerunCheck {
  variant: string;
  seed: number;
  committed: number | null;
  rerun: number;
  /** The committed runs' prediction interval for one more run of this variant. */
  low: number;
  high: number;
  inside: boolean;
}

export interface ClaimCheck {
  recipe: string;
  committedVerdict: VerdictWord;
  /** The verdict with the re-runs in place of the committed runs of their seeds. */
  recheckedVerdict: VerdictWord;
  runs: RerunCheck[];
  holds: boolean;
  text: string;
}

const pct = (x: number) => `${(100 * x).toFixed(2)}`;

function outcomes(variants: readonly Variant[], runs: readonly RunResult[]): VariantOutcome[] {
  return variants.map((v) => {
    const own = runs.filter((r) => r.variant === v.name);
    return {
      name: v.name,
      label: v.label,
      finals: own.map(judgedValue),
      alongRun: own.map((r) => r.points.reduce((a, p) => a + p.evalTop1, 0) / Math.max(1, r.points.length)),
    };
  });
}

/** Compares re-runs with the committed runs of one claim (pure: no training). */
export function judgeCheck(
  recipe: string,
  claim: Claim,
  variants: readonly Variant[],
  committed: readonly RunResult[],
  reruns: readonly RunResult[],
): ClaimCheck {
  if (reruns.length === 0) throw new ExperimentError(`${recipe}: nothing was re-run to check`);
  const level = 1 - 0.05 / reruns.length;
  const runs: RerunCheck[] = reruns.map((r) => {
    const same = committed.filter((c) => c.variant === r.variant);
    if (same.length < 2)
      throw new ExperimentError(`${recipe}/${r.variant}: the committed result has fewer than 2 runs, no spread to check against`);
    const pi = predictionInterval(same.map(judgedValue), level);
    const value = judgedValue(r);
    const own = same.find((c) => c.seed === r.seed);
    return {
      variant: r.variant,
      seed: r.seed,
      committed: own ? judgedValue(own) : null,
      rerun: value,
      low: pi.low,
      high: pi.high,
      inside: value >= pi.low && value <= pi.high,
    };
  });
  const committedVerdict = judgeClaim(claim, outcomes(variants, committed)).verdict;
  const replaced = committed.filter((c) => !reruns.some((r) => r.variant === c.variant && r.seed === c.seed)).concat(reruns);
  const recheckedVerdict = judgeClaim(claim, outcomes(variants, replaced)).verdict;
  const outside = runs.filter((r) => !r.inside);
  const holds = outside.length === 0 && recheckedVerdict === committedVerdict;
  const detail = runs
    .map(
      (r) =>
        `${r.variant} seed ${r.seed}: ${pct(r.rerun)} (committed ${r.committed === null ? '—' : pct(r.committed)}; expected ${pct(r.low)}–${pct(r.high)})${r.inside ? '' : ' OUTSIDE'}`,
    )
    .join('; ');
  const text =
    `${recipe}: the verdict ${holds ? 'holds' : 'does not hold'} — committed '${committedVerdict}', with the re-runs '${recheckedVerdict}'; ` +
    `${runs.length - outside.length} of ${runs.length} re-runs inside the committed spread (${(100 * level).toFixed(1)}% prediction intervals). ${detail}.`;
  return { recipe, committedVerdict, recheckedVerdict, runs, holds, text };
}

export interface CheckOptions {
  /** Where the re-runs go: OUT/check/<recipe>/<variant>/seed-<k>. */
  outDir: string;
  /** Seeds re-run per variant (the first ones; default 2). */
  seeds?: number;
  backend?: string;
  progress?: Progress;
  shouldStop?: () => boolean;
}

export interface CheckReport {
  format: 'xception-check/1';
  committedDir: string;
  claims: ClaimCheck[];
  interrupted: boolean;
}

/**
 * The re-runs' folder for one recipe, holding what they re-run (variants and settings): a second
 * check of a different committed result into the same --out must not reuse these runs.
 */
function claimCheckFolder(dir: string, manifest: ExperimentManifest): void {
  const file = join(dir, 'check-source.json');
  const source = `${JSON.stringify({ recipe: manifest.recipe, variants: manifest.variants, settings: { ...manifest.settings, seeds: 0 } }, null, 2)}\n`;
  if (existsSync(file)) {
    if (readFileSync(file, 'utf8') !== source)
      throw new OptionError(`${dir} holds re-runs of a result with other settings or variants; choose another --out`);
    return;
  }
  makeOutputDir(dir, 'outDir');
  writeFileAtomicSync(file, new TextEncoder().encode(source));
}

/** Re-runs a sample of every experiment under `committedDir` and checks each verdict. */
export async function checkCommitted(committedDir: string, o: CheckOptions): Promise<CheckReport> {
  const k = o.seeds ?? 2;
  if (!(Number.isInteger(k) && k >= 1)) throw new OptionError(`--check-seeds must be a positive integer, got ${k}`);
  if (o.backend) setBackend(o.backend);
  const progress = o.progress ?? new Progress(process.stderr);
  const claims: ClaimCheck[] = [];
  const out = resolve(o.outDir, 'check');
  for (const dir of findExperimentDirs(committedDir)) {
    const manifest = readManifest(dir);
    const committed = readResults(dir, manifest);
    const recipe = { ...getRecipe(manifest.recipe), variants: manifest.variants, claim: manifest.claim };
    const settings = manifest.settings;
    claimCheckFolder(join(out, manifest.recipe), manifest);
    const reruns: RunResult[] = [];
    for (let seed = 0; seed < Math.min(k, settings.seeds); seed++) {
      for (const variant of manifest.variants) {
        if (!committed.some((c) => c.variant === variant.name && c.seed === seed)) continue;
        const rd = runDir(join(out, manifest.recipe), variant.name, seed);
        const done = readFinishedRun(rd, settings.epochs);
        if (done) {
          reruns.push(done);
          continue;
        }
        makeOutputDir(rd, 'outDir');
        progress.line(`check ${manifest.recipe} ${variant.name} seed ${seed}`);
        const config = runConfig(recipe, variant, seed, settings, rd);
        const r = await train(config, { resume: hasCheckpoint(rd), progress, ...(o.shouldStop ? { shouldStop: o.shouldStop } : {}) });
        if (r.interrupted) return { format: 'xception-check/1', committedDir: resolve(committedDir), claims, interrupted: true };
        reruns.push(recordRunResult(recipe, variant, seed, settings, config, r));
      }
    }
    claims.push(judgeCheck(manifest.recipe, manifest.claim, manifest.variants, committed, reruns));
  }
  const report: CheckReport = { format: 'xception-check/1', committedDir: resolve(committedDir), claims, interrupted: false };
  makeOutputDir(out, 'outDir');
  writeFileAtomicSync(join(out, 'check.json'), new TextEncoder().encode(`${JSON.stringify(report, null, 2)}\n`));
  return report;
}
