/**
 * Runs a recipe: every variant × seed is its own trainer run folder,
 * `OUT/NAME/<variant>/seed-<k>/`, so each run checkpoints and resumes itself. A finished run
 * leaves `result.json` beside its checkpoint and is skipped when the experiment is resumed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { getBackend, setBackend } from '../core/engine.js';
import { OptionError, XceptionError } from '../core/errors.js';
import { writeFileAtomicSync } from '../io/atomic.js';
import { makeOutputDir } from '../io/output-paths.js';
import { hasCheckpoint, readCheckpoint } from '../train/checkpoint.js';
import { Progress } from '../train/progress.js';
import { DEFAULT_TRAIN_CONFIG, train, type EvalPoint, type TrainConfig, type TrainResult } from '../train/trainer.js';
import { currentProvenance, type Provenance } from './provenance.js';
import { getRecipe, variantInfo, type Claim, type Recipe, type RecipeMetric, type Variant } from './recipes.js';
import { measureSpeed, readSpeed, writeSpeed } from './speed.js';

export class ExperimentError extends XceptionError {}

export interface ExperimentRunOptions {
  /** Parent folder: the experiment goes to OUT/NAME. */
  outDir: string;
  /** Data set spec (default fashion-mnist). */
  dataset?: string;
  /** Override the recipe's epochs, seeds, image limits, batch size. */
  epochs?: number;
  seeds?: number;
  limitTrain?: number;
  limitTest?: number;
  batchSize?: number;
  /** Resize images (image folders). */
  imageSize?: number;
  /** Merged into every variant's model options (quick runs and tests, e.g. { middleBlocks: 0 }). */
  modelOverrides?: Record<string, unknown>;
  /** Continue an experiment folder: finished runs are skipped, interrupted ones resumed. */
  resume?: boolean;
  backend?: string;
  progress?: Progress;
  /** Polled after every training step; true checkpoints the current run and returns (Ctrl-C). */
  shouldStop?: () => boolean;
  /**
   * After the last run, measure the variants' training speed side by side (speed.json; default
   * true). Skipped if the folder already has one.
   */
  measureSpeed?: boolean;
  /** Rounds of that measurement (default 5). */
  speedRounds?: number;
}

/** The settings an experiment folder was started with (kept in experiment.json). */
export interface ExperimentSettings {
  dataset: string;
  epochs: number;
  seeds: number;
  limitTrain: number | null;
  limitTest: number | null;
  batchSize: number;
  imageSize: number | null;
  evalsPerEpoch: number;
  modelOverrides: Record<string, unknown>;
}

export interface ExperimentManifest {
  format: 'xception-experiment/1';
  recipe: string;
  description: string;
  varies: string;
  claim: Claim;
  matching: string | null;
  /** Why the seed count is what it is (absent in folders made before it was recorded). */
  seeding?: string | null;
  variants: Variant[];
  settings: ExperimentSettings;
  /** What the claim is judged on (absent in folders made before MAP@100: top-1). */
  metric?: RecipeMetric;
}

/** What one finished run measured (result.json in its run folder). */
export interface RunResult {
  experiment: string;
  variant: string;
  seed: number;
  model: string;
  modelOptions: Record<string, unknown>;
  dataset: string;
  params: number;
  trainableParams: number;
  multiplyAdds: number;
  finalTop1: number;
  finalTop5: number;
  finalLoss: number;
  epochs: number;
  steps: number;
  batchSize: number;
  /** Seconds in training steps (evaluation excluded), over all sessions of the run. */
  trainSeconds: number;
  wallSeconds: number;
  /** steps / trainSeconds. */
  stepsPerSec: number;
  backend: string;
  /** Validation accuracy and loss along the run, with step and time. */
  points: EvalPoint[];
  /** The judged metric and its final value (absent in results made before MAP@100: top-1). */
  metric?: RecipeMetric;
  finalMetric?: number;
  /** Code, backend build, CPU, Node and date of the session that finished the run. */
  provenance?: Provenance;
}

/** The value a claim is judged on: MAP@100 for multi-label recipes, else final top-1. */
export function judgedValue(r: RunResult): number {
  return r.finalMetric ?? r.finalTop1;
}

export interface ExperimentRunSummary {
  dir: string;
  results: RunResult[];
  /** Runs found finished and not redone. */
  skipped: number;
  /** Runs trained (or continued) in this call. */
  trained: number;
  interrupted: boolean;
}

export const MANIFEST_FILE = 'experiment.json';
export const RESULT_FILE = 'result.json';

export function runDir(experimentDir: string, variant: string, seed: number): string {
  return join(experimentDir, variant, `seed-${seed}`);
}

function settingsOf(recipe: Recipe, o: ExperimentRunOptions): ExperimentSettings {
  const t = recipe.training;
  const posInt = (name: string, v: number | undefined) => {
    if (v !== undefined && !(Number.isInteger(v) && v > 0))
      throw new OptionError(`experiment ${recipe.name}: ${name} must be a positive integer, got ${v}`);
    return v;
  };
  const seeds = posInt('seeds', o.seeds) ?? t.seeds;
  if (seeds < 2) throw new OptionError(`experiment ${recipe.name}: at least 2 seeds are needed to measure the spread, got ${seeds}`);
  return {
    dataset: o.dataset ?? t.dataset ?? 'fashion-mnist',
    epochs: posInt('epochs', o.epochs) ?? t.epochs,
    seeds,
    limitTrain: posInt('limitTrain', o.limitTrain) ?? t.limitTrain ?? null,
    limitTest: posInt('limitTest', o.limitTest) ?? t.limitTest ?? null,
    batchSize: posInt('batchSize', o.batchSize) ?? t.config.batchSize ?? DEFAULT_TRAIN_CONFIG.batchSize,
    imageSize: posInt('imageSize', o.imageSize) ?? null,
    evalsPerEpoch: t.evalsPerEpoch,
    modelOverrides: { ...(o.modelOverrides ?? {}) },
  };
}

/** The trainer configuration of one variant × seed. */
export function runConfig(recipe: Recipe, variant: Variant, seed: number, s: ExperimentSettings, dir: string): TrainConfig {
  const c: TrainConfig = {
    ...DEFAULT_TRAIN_CONFIG,
    ...recipe.training.config,
    dataset: s.dataset,
    model: variant.model,
    modelOptions: { ...variant.options, ...s.modelOverrides },
    epochs: s.epochs,
    batchSize: s.batchSize,
    seed,
    evalsPerEpoch: s.evalsPerEpoch,
    outDir: dir,
  };
  if (s.limitTrain !== null) c.limitTrain = s.limitTrain;
  if (s.limitTest !== null) c.limitTest = s.limitTest;
  if (s.imageSize !== null) c.imageSize = s.imageSize;
  return c;
}

function readJson<T>(file: string): T {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (e) {
    throw new ExperimentError(`${file}: cannot read it as JSON (${e instanceof Error ? e.message : String(e)})`);
  }
}

export function readManifest(experimentDir: string): ExperimentManifest {
  const file = join(experimentDir, MANIFEST_FILE);
  if (!existsSync(file)) throw new ExperimentError(`${experimentDir} is not an experiment folder (no ${MANIFEST_FILE})`);
  const m = readJson<ExperimentManifest>(file);
  if (m.format !== 'xception-experiment/1') throw new ExperimentError(`${file}: unknown format ${JSON.stringify(m.format)}`);
  return m;
}

/** A run's result if it finished with the experiment's epochs, else null. */
export function readFinishedRun(dir: string, epochs: number): RunResult | null {
  const file = join(dir, RESULT_FILE);
  if (!existsSync(file)) return null;
  const r = readJson<RunResult>(file);
  return r.epochs >= epochs ? r : null;
}

/** Every finished run of an experiment folder, in variant and seed order. */
export function readResults(experimentDir: string, manifest = readManifest(experimentDir)): RunResult[] {
  const out: RunResult[] = [];
  for (const v of manifest.variants) {
    for (let k = 0; k < manifest.settings.seeds; k++) {
      const r = readFinishedRun(runDir(experimentDir, v.name, k), manifest.settings.epochs);
      if (r) out.push(r);
    }
  }
  return out;
}

export async function runExperiment(name: string, o: ExperimentRunOptions): Promise<ExperimentRunSummary> {
  const recipe = getRecipe(name);
  const settings = settingsOf(recipe, o);
  if (o.backend) setBackend(o.backend);
  const progress = o.progress ?? new Progress(process.stderr);
  const dir = resolve(o.outDir, recipe.name);
  openExperimentDir(dir, experimentManifest(recipe, settings), o.resume ?? false);

  const results: RunResult[] = [];
  let skipped = 0,
    trained = 0;
  const total = recipe.variants.length * settings.seeds;
  let index = 0;
  // Seed-major order: an interrupted experiment already has every variant at the first seeds.
  for (let seed = 0; seed < settings.seeds; seed++) {
    for (const variant of recipe.variants) {
      index++;
      const rd = runDir(dir, variant.name, seed);
      const done = readFinishedRun(rd, settings.epochs);
      if (done) {
        progress.line(`[${index}/${total}] ${recipe.name} ${variant.name} seed ${seed}: finished earlier, skipped`);
        results.push(done);
        skipped++;
        continue;
      }
      const config = runConfig(recipe, variant, seed, settings, rd);
      const resume = hasCheckpoint(rd);
      progress.line(`[${index}/${total}] ${recipe.name} ${variant.name} seed ${seed}${resume ? ' (resuming)' : ''}`);
      const r = await train(config, { resume, progress, ...(o.shouldStop ? { shouldStop: o.shouldStop } : {}) });
      trained++;
      if (r.interrupted) return { dir, results, skipped, trained, interrupted: true };
      results.push(recordRunResult(recipe, variant, seed, settings, config, r));
    }
  }
  if ((o.measureSpeed ?? true) && readSpeed(dir) === null && results.length > 0) {
    measureExperimentSpeed(dir, recipe, settings, results[0]!, o.speedRounds ?? 5, progress);
  }
  return { dir, results, skipped, trained, interrupted: false };
}

function experimentManifest(recipe: Recipe, settings: ExperimentSettings): ExperimentManifest {
  return {
    format: 'xception-experiment/1',
    recipe: recipe.name,
    description: recipe.description,
    varies: recipe.varies,
    claim: recipe.claim,
    matching: recipe.matching ?? null,
    seeding: recipe.seeding ?? null,
    variants: recipe.variants,
    settings,
    metric: recipe.training.metric ?? 'top1',
  };
}

/** Creates the experiment folder and its manifest; an existing one needs resume and the same settings. */
function openExperimentDir(dir: string, manifest: ExperimentManifest, resume: boolean): void {
  if (existsSync(join(dir, MANIFEST_FILE))) {
    if (!resume)
      throw new OptionError(
        `${dir} already holds this experiment; pass --resume to continue it (finished runs are kept) or choose another --out`,
      );
    const saved = readManifest(dir);
    // Seeds and epochs may grow on resume; everything else must match what the runs were trained with.
    const same = (x: ExperimentManifest) => JSON.stringify({ ...x.settings, seeds: 0, epochs: 0, variants: x.variants });
    if (same(saved) !== same(manifest)) {
      throw new OptionError(
        `cannot resume ${dir} with different settings: it was started with ${JSON.stringify(saved.settings)}, now ${JSON.stringify(manifest.settings)} (only --seeds and --epochs may change)`,
      );
    }
  }
  makeOutputDir(dir, 'outDir');
  writeFileAtomicSync(join(dir, MANIFEST_FILE), new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`));
}

/** Writes a finished run's result.json beside its checkpoint and returns it. */
export function recordRunResult(
  recipe: Recipe,
  variant: Variant,
  seed: number,
  settings: ExperimentSettings,
  config: TrainConfig,
  r: TrainResult,
): RunResult {
  const rd = config.outDir;
  const state = readCheckpoint(rd).state;
  const built = state.model.options as { inputShape: [number, number, number]; classes: number };
  const info = variantInfo({ ...variant, options: config.modelOptions }, built.inputShape, built.classes);
  const metric = recipe.training.metric ?? 'top1';
  const result: RunResult = {
    experiment: recipe.name,
    variant: variant.name,
    seed,
    model: variant.model,
    modelOptions: config.modelOptions,
    dataset: settings.dataset,
    params: info.params,
    trainableParams: info.trainableParams,
    multiplyAdds: info.multiplyAdds,
    finalTop1: r.testTop1,
    finalTop5: r.testTop5,
    finalLoss: r.testLoss,
    epochs: r.epochs,
    steps: r.steps,
    batchSize: settings.batchSize,
    trainSeconds: r.trainSeconds,
    wallSeconds: r.wallSeconds,
    stepsPerSec: r.steps / Math.max(r.trainSeconds, 1e-9),
    backend: r.backend || getBackend().name,
    points: r.evalPoints,
    metric,
    finalMetric: metric === 'map' ? finalMap(r, rd) : r.testTop1,
    provenance: currentProvenance(),
  };
  writeFileAtomicSync(join(rd, RESULT_FILE), new TextEncoder().encode(`${JSON.stringify(result, null, 2)}\n`));
  return result;
}

/** MAP@100 of a multi-label run, as the multi-label trainer reports it (TrainResult.testMap). */
function finalMap(r: TrainResult, dir: string): number {
  const map = r.testMap;
  if (typeof map !== 'number' || !Number.isFinite(map))
    throw new ExperimentError(`${dir}: the run reported no MAP@100 (testMap); the recipe is judged on it — was it trained multi-label?`);
  return map;
}

/** Measures the variants' training speed side by side into speed.json, at the size the runs were built with. */
function measureExperimentSpeed(
  dir: string,
  recipe: Recipe,
  settings: ExperimentSettings,
  first: RunResult,
  rounds: number,
  progress: Progress,
): void {
  // The input size and classes the runs were built with (the data set decides them).
  const built = readCheckpoint(runDir(dir, first.variant, first.seed)).state.model.options as {
    inputShape: [number, number, number];
    classes: number;
  };
  progress.line(`${recipe.name}: measuring training speed side by side (${rounds} interleaved rounds per variant)`);
  const variants = recipe.variants.map((v) => ({ ...v, options: { ...v.options, ...settings.modelOverrides } }));
  writeSpeed(dir, measureSpeed(variants, { batchSize: settings.batchSize, inputShape: built.inputShape, classes: built.classes, rounds }));
}
