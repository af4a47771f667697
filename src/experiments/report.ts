/**
 * The experiment report: reads an experiment folder (or a folder of them), aggregates the runs
 * over seeds, draws the curves (mean line, ±1 standard deviation band), tabulates final accuracy
 * with 95% Student-t intervals, parameter counts and throughput, and writes one paragraph per
 * experiment that compares the outcome with the paper's claim. Every verdict is computed from the
 * numbers (judgeClaim); none is written in advance.
 *
 * Output: report.md + figures/*.svg (+ .png through sharp) and report.html with the SVGs inlined.
 */
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomicSync } from '../io/atomic.js';
import { lineChartSvg, svgToPng, type Series } from '../report/svg-chart.js';
import type { Claim } from './recipes.js';
import { provenanceText } from './provenance.js';
import {
  ExperimentError,
  judgedValue,
  MANIFEST_FILE,
  readManifest,
  readResults,
  type ExperimentManifest,
  type RunResult,
} from './runner.js';
import { readSpeed, type SpeedReport } from './speed.js';
import { confidenceInterval, differenceInterval, MAX_SEEDS_NEEDED, mean, seedsNeeded, std, type Interval } from './stats.js';

/** What the judge needs of one variant: final accuracies and accuracy along the run, per seed. */
export interface VariantOutcome {
  name: string;
  label: string;
  /** Final validation top-1 per seed, in [0, 1]. */
  finals: number[];
  /** Per seed: the mean validation top-1 over the run's evaluation points (higher = converged sooner). */
  alongRun: number[];
  stepsPerSec?: number[];
}

export type VerdictWord = 'agrees' | 'partly agrees' | 'does not agree' | 'inconclusive';

export interface Verdict {
  verdict: VerdictWord;
  paragraph: string;
  /**
   * When some part of the claim is undecided: seeds per variant that would decide it at the
   * observed spread and difference (Infinity: none within MAX_SEEDS_NEEDED); null when decided.
   */
  seedsNeeded: number | null;
}

type Cmp = 'agrees' | 'does not agree' | 'inconclusive';

const pts = (x: number) => `${(100 * x).toFixed(2)}`;
const signedPts = (x: number) => `${x >= 0 ? '+' : '−'}${(100 * Math.abs(x)).toFixed(2)}`;
const ciText = (d: Interval) =>
  Number.isFinite(d.low) ? `95% CI ${signedPts(d.low)} to ${signedPts(d.high)} points` : 'no interval: fewer than 2 seeds';

/** `a` should beat `b`: agrees if the difference's interval is above zero, disagrees if below. */
function compareBetter(a: readonly number[], b: readonly number[]): { cmp: Cmp; d: Interval; needed: number | null } {
  const d = differenceInterval(a, b);
  if (!Number.isFinite(d.low)) return { cmp: 'inconclusive', d, needed: null };
  const cmp = d.low > 0 ? 'agrees' : d.high < 0 ? 'does not agree' : 'inconclusive';
  return { cmp, d, needed: cmp === 'inconclusive' ? seedsToDecide(a, b, d, 0) : null };
}

/**
 * The power calculation: seeds per variant at which the difference's interval would clear the
 * boundary (0, or ±margin) if the observed means and spreads held.
 */
function seedsToDecide(a: readonly number[], b: readonly number[], d: Interval, boundary: number): number {
  return seedsNeeded(std(a), std(b), Math.abs(Math.abs(d.mean) - boundary));
}

/** The largest of the undecided parts' seed counts (null when every part is decided). */
function mostSeeds(...ns: (number | null)[]): number | null {
  const open = ns.filter((n): n is number => n !== null);
  return open.length ? Math.max(...open) : null;
}

/** The paragraph's sentence for an undecided claim. */
export function seedsNeededText(n: number | null): string {
  if (n === null) return '';
  if (!Number.isFinite(n))
    return ` To decide: no number of seeds up to ${MAX_SEEDS_NEEDED} would, at the observed spread — the observed difference sits (almost) on the boundary; more training or another margin, not more seeds, would decide it.`;
  return ` To decide: about ${n} seeds per variant, if the observed means and spread held (the smallest n whose 95% Welch interval is narrower than the difference's distance from the boundary).`;
}

/**
 * The verdict on a claim whose parts must all hold: it agrees when every part does; one part
 * decided against it refutes the claim (does not agree — no number of seeds changes that, and the
 * paragraph says which parts held); otherwise it is undecided: partly agrees when some parts
 * agree, else inconclusive, with the most seeds any open part would need.
 */
function conjunction(parts: { cmp: Cmp; needed: number | null }[]): { verdict: VerdictWord; needed: number | null } {
  if (parts.every((p) => p.cmp === 'agrees')) return { verdict: 'agrees', needed: null };
  if (parts.some((p) => p.cmp === 'does not agree')) return { verdict: 'does not agree', needed: null };
  const needed = mostSeeds(...parts.map((p) => p.needed));
  return { verdict: parts.some((p) => p.cmp === 'agrees') ? 'partly agrees' : 'inconclusive', needed };
}

function seedsText(vs: readonly VariantOutcome[]): string {
  const ns = [...new Set(vs.map((v) => v.finals.length))];
  const n = ns.length === 1 ? `${ns[0]} seeds per variant` : `${ns.join('/')} seeds per variant`;
  const margins = vs.map((v) => confidenceInterval(v.finals).margin).filter(Number.isFinite);
  const widths = margins.length
    ? `; each variant's own 95% interval is ±${(100 * Math.min(...margins)).toFixed(2)} to ±${(100 * Math.max(...margins)).toFixed(2)} points wide, so differences smaller than about that cannot be resolved`
    : '';
  return `${n}, 95% Welch intervals for differences of means${widths}`;
}

/** What every claim's judge uses: the variants by name, and the paragraph's opening and closing. */
interface Judging {
  variants: readonly VariantOutcome[];
  get: (name: string) => VariantOutcome;
  /** "The paper: …." */
  paper: string;
  /** " How sure: …." */
  how: string;
}

type ClaimOf<K extends Claim['kind']> = Extract<Claim, { kind: K }>;

const acc = (v: VariantOutcome) => `${v.label} ${pts(mean(v.finals))}%`;
const capitalized = (s: string) => `${s[0]!.toUpperCase()}${s.slice(1)}`;
const pointsWord = (n: number) => `point${n === 1 ? '' : 's'}`;

/** Compares the measured outcome with the paper's claim; the wording follows from the numbers. */
export function judgeClaim(claim: Claim, variants: readonly VariantOutcome[]): Verdict {
  const byName = new Map(variants.map((v) => [v.name, v]));
  const get = (n: string) => {
    const v = byName.get(n);
    if (!v) throw new ExperimentError(`the claim names variant '${n}' but the results have none`);
    return v;
  };
  const j: Judging = { variants, get, paper: `The paper: ${claim.text}.`, how: ` How sure: ${seedsText(variants)}.` };
  switch (claim.kind) {
    case 'better':
      return judgeBetter(claim, j);
    case 'better-and-faster':
      return judgeBetterAndFaster(claim, j);
    case 'ranking':
      return judgeRanking(claim, j);
    case 'equivalent':
      return judgeEquivalent(claim, j);
    case 'extreme-not-optimal':
      return judgeExtremeNotOptimal(claim, j);
    case 'sign-flip':
      return judgeSignFlip(claim, j);
    case 'better-each':
      return judgeBetterEach(claim, j);
  }
}

/** The paper's training speeds (Xception 28, Inception V3 31 steps/s), as the report quotes them. */
const PAPER_XCEPTION_VS_INCEPTION_SPEED = '; the paper measured 28 vs 31 steps/s, ratio 0.90, on 60 GPUs';

function judgeBetter(claim: ClaimOf<'better'>, { get, paper, how }: Judging): Verdict {
  const a = get(claim.better),
    b = get(claim.worse);
  const { cmp, d, needed } = compareBetter(a.finals, b.finals);
  let body: string;
  if (cmp === 'agrees') body = `Agrees: ${acc(a)} vs ${acc(b)}, a difference of ${signedPts(d.mean)} points (${ciText(d)}), above zero.`;
  else if (cmp === 'does not agree')
    body = `Does not agree: ${acc(a)} vs ${acc(b)}, a difference of ${signedPts(d.mean)} points (${ciText(d)}), below zero — here ${b.label} is the more accurate.`;
  else
    body = `Inconclusive: the intervals overlap — ${acc(a)} vs ${acc(b)}, a difference of ${signedPts(d.mean)} points (${ciText(d)}), which includes zero. The data neither show ${a.label} ahead nor rule out that it is.`;
  let speed = '';
  if (a.stepsPerSec?.length && b.stepsPerSec?.length) {
    const sa = mean(a.stepsPerSec),
      sb = mean(b.stepsPerSec);
    // The paper's speed figure is of Xception vs Inception V3 only.
    const paperSpeed = claim.better === 'xception' && claim.worse === 'inception_v3' ? PAPER_XCEPTION_VS_INCEPTION_SPEED : '';
    speed = ` Training speed: ${a.label} ${sa.toFixed(2)} steps/s, ${b.label} ${sb.toFixed(2)} steps/s (ratio ${(sa / sb).toFixed(2)}${paperSpeed}).`;
  }
  return { verdict: cmp, paragraph: `${paper} ${body}${speed}${seedsNeededText(needed)}${how}`, seedsNeeded: needed };
}

function judgeBetterAndFaster(claim: ClaimOf<'better-and-faster'>, { get, paper, how }: Judging): Verdict {
  const a = get(claim.better),
    b = get(claim.worse);
  const fin = compareBetter(a.finals, b.finals);
  const conv = compareBetter(a.alongRun, b.alongRun);
  const { verdict, needed } = conjunction([conv, fin]);
  const word = (c: Cmp) =>
    c === 'agrees' ? 'agrees' : c === 'does not agree' ? 'does not agree' : 'inconclusive (the interval includes zero)';
  const body =
    `${capitalized(verdict)}. Convergence — mean validation accuracy over the run's evaluation points, ` +
    `${a.label} ${pts(mean(a.alongRun))}% vs ${b.label} ${pts(mean(b.alongRun))}%, difference ${signedPts(conv.d.mean)} points (${ciText(conv.d)}): ${word(conv.cmp)}. ` +
    `Final accuracy — ${acc(a)} vs ${acc(b)}, difference ${signedPts(fin.d.mean)} points (${ciText(fin.d)}): ${word(fin.cmp)}.`;
  return { verdict, paragraph: `${paper} ${body}${seedsNeededText(needed)}${how}`, seedsNeeded: needed };
}

function judgeRanking(claim: ClaimOf<'ranking'>, { get, paper, how }: Judging): Verdict {
  const order = claim.order.map(get);
  const pairs: string[] = [];
  const parts: { cmp: Cmp; needed: number | null }[] = [];
  for (let i = 0; i + 1 < order.length; i++) {
    const a = order[i]!,
      b = order[i + 1]!;
    const { cmp, d, needed } = compareBetter(a.finals, b.finals);
    parts.push({ cmp, needed });
    const said = cmp === 'agrees' ? 'beats' : cmp === 'does not agree' ? 'loses to' : 'cannot be told apart from';
    pairs.push(`${a.label} ${said} ${b.label} (${signedPts(d.mean)} points, ${ciText(d)})`);
  }
  const { verdict, needed } = conjunction(parts);
  const measured = [...order]
    .sort((x, y) => mean(y.finals) - mean(x.finals))
    .map(acc)
    .join(' > ');
  const inconclusiveNote = verdict === 'inconclusive' ? ' — the intervals overlap' : '';
  return {
    verdict,
    paragraph: `${paper} ${capitalized(verdict)}${inconclusiveNote}. Measured order of the means: ${measured}. Pair by pair: ${pairs.join('; ')}.${seedsNeededText(needed)}${how}`,
    seedsNeeded: needed,
  };
}

function judgeEquivalent(claim: ClaimOf<'equivalent'>, { get, paper, how }: Judging): Verdict {
  const [na, nb] = claim.variants;
  const a = get(na),
    b = get(nb);
  const d = differenceInterval(a.finals, b.finals);
  const margin = claim.marginPoints;
  const m = margin / 100;
  let verdict: VerdictWord, body: string;
  if (!Number.isFinite(d.low)) {
    verdict = 'inconclusive';
    body = `Inconclusive: fewer than 2 seeds, no interval.`;
  } else if (d.low >= -m && d.high <= m) {
    verdict = 'agrees';
    body =
      `Agrees: ${acc(a)} vs ${acc(b)}; the whole interval of the difference (${ciText(d)}) lies within ±${margin} ${pointsWord(margin)}` +
      (d.low > 0 || d.high < 0 ? ', so although a difference is detectable it is smaller than the margin.' : '.');
  } else if (d.low > m || d.high < -m) {
    verdict = 'does not agree';
    body = `Does not agree: ${acc(a)} vs ${acc(b)}; the difference (${signedPts(d.mean)} points, ${ciText(d)}) is larger than ${margin} ${pointsWord(margin)} throughout its interval.`;
  } else {
    verdict = 'inconclusive';
    body =
      `Inconclusive: ${acc(a)} vs ${acc(b)}, difference ${signedPts(d.mean)} points (${ciText(d)}). ` +
      (d.low > 0 || d.high < 0
        ? 'A difference is detected, but the data cannot say whether it exceeds the margin.'
        : `No difference is detected, but the interval reaches beyond ±${margin} ${pointsWord(margin)}, so a difference that size is not ruled out.`);
  }
  const needed = verdict === 'inconclusive' && Number.isFinite(d.low) ? seedsToDecide(a.finals, b.finals, d, m) : null;
  return { verdict, paragraph: `${paper} ${body}${seedsNeededText(needed)}${how}`, seedsNeeded: needed };
}

function judgeExtremeNotOptimal(claim: ClaimOf<'extreme-not-optimal'>, { variants, get, paper, how }: Judging): Verdict {
  const ext = get(claim.extreme);
  const others = variants.filter((v) => v.name !== claim.extreme);
  if (others.length === 0) throw new ExperimentError(`the claim compares '${claim.extreme}' with other variants but there are none`);
  const best = [...others].sort((x, y) => mean(y.finals) - mean(x.finals))[0]!;
  const vsBest = compareBetter(best.finals, ext.finals);
  const allWorse = others.every((o) => compareBetter(o.finals, ext.finals).cmp === 'does not agree');
  const ranking = [...variants]
    .sort((x, y) => mean(y.finals) - mean(x.finals))
    .map(acc)
    .join(' > ');
  let verdict: VerdictWord, body: string;
  if (vsBest.cmp === 'agrees') {
    verdict = 'agrees';
    body =
      `Agrees: ${best.label} beats the extreme (${ext.label}) by ${signedPts(vsBest.d.mean)} points (${ciText(vsBest.d)}). ` +
      `It was picked as the best of ${others.length} alternatives after the fact, which makes that interval somewhat optimistic.`;
  } else if (allWorse) {
    verdict = 'does not agree';
    body = `Does not agree: the extreme (${ext.label}) is more accurate than every other point of the spectrum, each difference's interval lying below zero (closest: ${best.label}, ${signedPts(vsBest.d.mean)} points, ${ciText(vsBest.d)}).`;
  } else {
    verdict = 'inconclusive';
    body = `Inconclusive: the intervals overlap — the best alternative, ${best.label}, differs from the extreme (${ext.label}) by ${signedPts(vsBest.d.mean)} points (${ciText(vsBest.d)}), and the extreme is not clearly ahead of every alternative either.`;
  }
  const needed = verdict === 'inconclusive' ? vsBest.needed : null;
  return { verdict, paragraph: `${paper} ${body} Order of the means: ${ranking}.${seedsNeededText(needed)}${how}`, seedsNeeded: needed };
}

function judgeSignFlip(claim: ClaimOf<'sign-flip'>, { get, paper, how }: Judging): Verdict {
  const part = (p: { with: string; without: string }, shouldHelp: boolean) => {
    const w = get(p.with),
      wo = get(p.without);
    // Compare in the direction the claim predicts, so that 'agrees' means as claimed.
    const r = shouldHelp ? compareBetter(w.finals, wo.finals) : compareBetter(wo.finals, w.finals);
    const effect = differenceInterval(w.finals, wo.finals);
    const word =
      r.cmp === 'agrees'
        ? 'as claimed'
        : r.cmp === 'does not agree'
          ? 'the opposite of the claim'
          : 'undecided (the interval includes zero)';
    return { r, text: `${w.label} − ${wo.label}: ${signedPts(effect.mean)} points (${ciText(effect)}), ${word}` };
  };
  const shallow = part(claim.shallow, false);
  const deep = part(claim.deep, true);
  const { verdict, needed } = conjunction([shallow.r, deep.r]);
  const body = `${capitalized(verdict)}. Shallow segments (the switch should hurt): ${shallow.text}. Deep segments (it should help): ${deep.text}.`;
  return { verdict, paragraph: `${paper} ${body}${seedsNeededText(needed)}${how}`, seedsNeeded: needed };
}

function judgeBetterEach(claim: ClaimOf<'better-each'>, { get, paper, how }: Judging): Verdict {
  const parts = claim.pairs.map((p) => {
    const a = get(p.better),
      b = get(p.worse);
    const r = compareBetter(a.finals, b.finals);
    const relative = mean(b.finals) !== 0 ? ` (${signedPts(mean(a.finals) / mean(b.finals) - 1)}% relative)` : '';
    return { r, text: `${acc(a)} vs ${acc(b)}: ${signedPts(r.d.mean)} points${relative}, ${ciText(r.d)}` };
  });
  const { verdict, needed } = conjunction(parts.map((p) => p.r));
  const body = `${capitalized(verdict)}. ${parts.map((p) => p.text).join('; ')}.`;
  return { verdict, paragraph: `${paper} ${body}${seedsNeededText(needed)}${how}`, seedsNeeded: needed };
}

// ---------------------------------------------------------------------------------------------

export interface CurvePoint {
  step: number;
  trainSeconds: number;
  acc: number;
  accSd: number;
  loss: number;
  lossSd: number;
}

export interface VariantSummary {
  name: string;
  label: string;
  options: Record<string, unknown>;
  model: string;
  runs: RunResult[];
  params: number | null;
  trainableParams: number | null;
  multiplyAdds: number | null;
  top1: Interval & { sd: number };
  loss: number;
  stepsPerSec: number;
  curve: CurvePoint[];
}

export interface ExperimentSummary {
  dir: string;
  manifest: ExperimentManifest;
  variants: VariantSummary[];
  expectedRuns: number;
  finishedRuns: number;
  verdict: Verdict | null;
  /** The side-by-side speed measurement (speed.json), if the folder has one. */
  speed: SpeedReport | null;
}

/** Mean curve over seeds: point i of every seed that has it (seeds share their evaluation steps). */
export function meanCurve(runs: readonly RunResult[]): CurvePoint[] {
  const n = Math.min(...runs.map((r) => r.points.length));
  const out: CurvePoint[] = [];
  for (let i = 0; i < (Number.isFinite(n) ? n : 0); i++) {
    const ps = runs.map((r) => r.points[i]!);
    const accs = ps.map((p) => p.evalTop1),
      losses = ps.map((p) => p.evalLoss);
    out.push({
      step: mean(ps.map((p) => p.step)),
      trainSeconds: mean(ps.map((p) => p.trainSeconds)),
      acc: mean(accs),
      accSd: std(accs),
      loss: mean(losses),
      lossSd: std(losses),
    });
  }
  return out;
}

export function summarizeExperiment(dir: string): ExperimentSummary {
  const abs = resolve(dir);
  const manifest = readManifest(abs);
  const results = readResults(abs, manifest);
  const speed = readSpeed(abs);
  // Steps/s: the side-by-side measurement where there is one; else the runs' own (each run's
  // speed carries the machine's load at its hour).
  const stepsPerSecOf = (name: string, runs: RunResult[]) => {
    const measured = speed?.variants.find((s) => s.variant === name);
    return measured ? [measured.stepsPerSec] : runs.map((r) => r.stepsPerSec);
  };
  const variants: VariantSummary[] = manifest.variants.map((v) => {
    const runs = results.filter((r) => r.variant === v.name);
    const finals = runs.map(judgedValue);
    return {
      name: v.name,
      label: v.label,
      options: runs[0]?.modelOptions ?? v.options,
      model: v.model,
      runs,
      params: runs[0]?.params ?? null,
      trainableParams: runs[0]?.trainableParams ?? null,
      multiplyAdds: runs[0]?.multiplyAdds ?? null,
      top1: { ...confidenceInterval(finals), sd: std(finals) },
      loss: mean(runs.map((r) => r.finalLoss)),
      stepsPerSec: mean(stepsPerSecOf(v.name, runs)),
      curve: runs.length ? meanCurve(runs) : [],
    };
  });
  const outcomes: VariantOutcome[] = variants.map((v) => ({
    name: v.name,
    label: v.label,
    finals: v.runs.map(judgedValue),
    alongRun: v.runs.map((r) => mean(r.points.map((p) => p.evalTop1))),
    stepsPerSec: stepsPerSecOf(v.name, v.runs),
  }));
  const verdict = outcomes.every((o) => o.finals.length > 0) ? judgeClaim(manifest.claim, outcomes) : null;
  return {
    dir: abs,
    manifest,
    variants,
    expectedRuns: manifest.variants.length * manifest.settings.seeds,
    finishedRuns: results.length,
    verdict,
    speed,
  };
}

export interface Figure {
  file: string;
  caption: string;
  svg: string;
}

export function experimentFigures(s: ExperimentSummary): Figure[] {
  const name = s.manifest.recipe;
  const figs: Figure[] = [];
  const withData = s.variants.filter((v) => v.curve.length > 0);
  for (const [metric, yLabel] of [
    ['accuracy', 'validation top-1'],
    ['loss', 'validation loss'],
  ] as const) {
    for (const [axis, xLabel] of [
      ['steps', 'training steps'],
      ['time', 'training time (s, evaluation excluded)'],
    ] as const) {
      const series: Series[] = withData.map((v) => {
        const x = (p: CurvePoint) => (axis === 'steps' ? p.step : p.trainSeconds);
        const y = (p: CurvePoint) => (metric === 'accuracy' ? p.acc : p.loss);
        const sd = (p: CurvePoint) => (metric === 'accuracy' ? p.accSd : p.lossSd);
        return {
          label: v.name, // short: the chart's legend is narrow
          points: v.curve.map((p) => [x(p), y(p)] as [number, number]),
          band: v.curve.map((p) => [x(p), y(p) - sd(p), y(p) + sd(p)] as [number, number, number]),
        };
      });
      const title = `${name}: ${yLabel} vs ${axis === 'steps' ? 'steps' : 'training time'}`;
      figs.push({
        file: `${name}-${metric}-${axis}.svg`,
        caption: `${yLabel} against ${xLabel}; line: mean over seeds, band: ±1 standard deviation`,
        svg: lineChartSvg(series, { title, xLabel, yLabel, width: 640, height: 360 }),
      });
    }
  }
  return figs;
}

const fmtInt = (n: number | null) => (n === null ? '—' : n.toLocaleString('en-US'));
const fmtPct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(2)}%` : '—');
/** Accuracy intervals shown within [0, 100]%: the t interval can overshoot a bounded quantity. */
const clip01 = (x: number) => Math.min(1, Math.max(0, x));

export interface TableRow {
  cells: string[];
}

export const TABLE_HEADER = [
  'variant',
  'switch',
  'parameters',
  'M mult-adds/image',
  'seeds',
  'final top-1 (mean ± sd)',
  '95% CI',
  'final loss',
  'steps/s',
];

export function experimentTable(s: ExperimentSummary): string[][] {
  return s.variants.map((v) => {
    const sw = s.manifest.varies === 'model' ? v.model : `${s.manifest.varies}=${JSON.stringify(v.options[s.manifest.varies] ?? null)}`;
    const width = v.options['width'] !== undefined ? `, width ${v.options['width']}` : '';
    const params = v.params === null ? '—' : `${fmtInt(v.params)} (${fmtInt(v.trainableParams)} trainable)`;
    return [
      v.label,
      `${sw}${width}`,
      params,
      v.multiplyAdds === null ? '—' : (v.multiplyAdds / 1e6).toFixed(1),
      String(v.runs.length),
      v.runs.length ? `${fmtPct(v.top1.mean)} ± ${(100 * v.top1.sd).toFixed(2)}` : '—',
      Number.isFinite(v.top1.low) ? `${fmtPct(clip01(v.top1.low))} – ${fmtPct(clip01(v.top1.high))}` : '—',
      Number.isFinite(v.loss) ? v.loss.toFixed(4) : '—',
      Number.isFinite(v.stepsPerSec) ? v.stepsPerSec.toFixed(2) : '—',
    ];
  });
}

/**
 * Which code, build and machine produced the runs: one entry per distinct provenance (the date
 * aside), with its number of runs and dates.
 */
export function provenanceSummary(runs: readonly RunResult[]): string {
  const groups = new Map<string, string[]>();
  let unrecorded = 0;
  for (const r of runs) {
    if (!r.provenance) {
      unrecorded++;
      continue;
    }
    const key = provenanceText({ ...r.provenance, date: '' }).replace(/, $/, '');
    groups.set(key, [...(groups.get(key) ?? []), r.provenance.date.slice(0, 10)]);
  }
  const parts = [...groups].map(([key, dates]) => {
    const days = [...new Set(dates)].sort();
    const when = days.length > 1 ? `${days[0]} to ${days[days.length - 1]}` : days[0];
    return `${dates.length} run${dates.length === 1 ? '' : 's'}: ${key}, ${when}`;
  });
  if (unrecorded) parts.push(`${unrecorded} run${unrecorded === 1 ? '' : 's'} made before provenance was recorded (backend only)`);
  return parts.join('; ') || 'no runs';
}

/** The table's header with the judged metric named. */
export function tableHeader(metric: ExperimentManifest['metric']): string[] {
  return metric === 'map' ? TABLE_HEADER.map((h) => h.replace('final top-1', 'final MAP@100')) : [...TABLE_HEADER];
}

function settingsText(s: ExperimentSummary): string {
  const st = s.manifest.settings;
  const backends = [...new Set(s.variants.flatMap((v) => v.runs.map((r) => r.backend)))].join(', ') || '—';
  return (
    `data ${st.dataset}${st.limitTrain ? ` (at most ${st.limitTrain} training images)` : ''}${st.limitTest ? ` (at most ${st.limitTest} test images)` : ''}, ` +
    `${st.epochs} epoch${st.epochs === 1 ? '' : 's'}, batch ${st.batchSize}, ${st.evalsPerEpoch} evaluation${st.evalsPerEpoch === 1 ? '' : 's'} per epoch, ` +
    `${st.seeds} seeds; ${s.finishedRuns} of ${s.expectedRuns} runs finished; backend ${backends}` +
    `; provenance — ${provenanceSummary(s.variants.flatMap((v) => v.runs))}` +
    (Object.keys(st.modelOverrides).length ? `; model overrides ${JSON.stringify(st.modelOverrides)} (not the recipe's networks)` : '') +
    (s.speed
      ? `; steps/s measured side by side after training (median of ${s.speed.variants[0]?.rounds.length ?? 0} interleaved rounds of ${s.speed.stepsPerRound} steps, batch ${s.speed.batchSize}, ${s.speed.threads} OpenMP threads)`
      : "; steps/s: the runs' own training speed (no side-by-side measurement: it carries the machine's load at each run's hour)")
  );
}

function markdownSection(s: ExperimentSummary, figs: Figure[]): string {
  const m = s.manifest;
  const rows = experimentTable(s);
  const esc = (c: string) => c.replace(/\|/g, '\\|');
  const lines = [
    `## ${m.recipe}`,
    '',
    `${m.description}.`,
    '',
    `Settings: ${settingsText(s)}.`,
    '',
    ...(m.matching ? [`Parameter matching: ${m.matching}`, ''] : []),
    ...(m.seeding ? [`Seeds: ${m.seeding}`, ''] : []),
    `| ${tableHeader(m.metric).join(' | ')} |`,
    `| ${TABLE_HEADER.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
    '',
    s.verdict
      ? `**Outcome vs the paper (${s.verdict.verdict}).** ${s.verdict.paragraph}`
      : `**Outcome vs the paper:** not judged yet — some variants have no finished run.`,
    '',
    ...figs.flatMap((f) => [
      `![${f.caption}](figures/${f.file})`,
      '',
      `*${f.caption}* ([PNG](figures/${f.file.replace(/\.svg$/, '.png')}))`,
      '',
    ]),
  ];
  return lines.join('\n');
}

function htmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function htmlSection(s: ExperimentSummary, figs: Figure[]): string {
  const m = s.manifest;
  const rows = experimentTable(s);
  return [
    `<section id="${htmlEscape(m.recipe)}">`,
    `<h2>${htmlEscape(m.recipe)}</h2>`,
    `<p>${htmlEscape(m.description)}.</p>`,
    `<p class="settings">Settings: ${htmlEscape(settingsText(s))}.</p>`,
    ...(m.matching ? [`<p class="settings">Parameter matching: ${htmlEscape(m.matching)}</p>`] : []),
    ...(m.seeding ? [`<p class="settings">Seeds: ${htmlEscape(m.seeding)}</p>`] : []),
    '<table>',
    `<tr>${tableHeader(m.metric)
      .map((h) => `<th>${htmlEscape(h)}</th>`)
      .join('')}</tr>`,
    ...rows.map((r) => `<tr>${r.map((c) => `<td>${htmlEscape(c)}</td>`).join('')}</tr>`),
    '</table>',
    s.verdict
      ? `<p class="verdict"><strong>Outcome vs the paper (${htmlEscape(s.verdict.verdict)}).</strong> ${htmlEscape(s.verdict.paragraph)}</p>`
      : '<p class="verdict"><strong>Outcome vs the paper:</strong> not judged yet — some variants have no finished run.</p>',
    '<div class="figures">',
    ...figs.map((f) => `<figure>${f.svg}<figcaption>${htmlEscape(f.caption)}</figcaption></figure>`),
    '</div>',
    '</section>',
  ].join('\n');
}

/** Experiment folders under `dir`: itself if it is one, else its subfolders that are. */
export function findExperimentDirs(dir: string): string[] {
  const abs = resolve(dir);
  if (!existsSync(abs)) throw new ExperimentError(`no such folder: ${abs}`);
  if (existsSync(join(abs, MANIFEST_FILE))) return [abs];
  const subs = readdirSync(abs)
    .map((n) => join(abs, n))
    .filter((p) => statSync(p).isDirectory() && existsSync(join(p, MANIFEST_FILE)))
    .sort();
  if (subs.length === 0) throw new ExperimentError(`${abs} holds no experiment (no ${MANIFEST_FILE} in it or in its subfolders)`);
  return subs;
}

export interface WrittenReport {
  markdownFile: string;
  htmlFile: string;
  figureFiles: string[];
  summaries: ExperimentSummary[];
}

/** Writes report.md, report.html and figures/ into `dir` (an experiment folder or a folder of them). */
export async function writeReport(dir: string, opts: { png?: boolean } = {}): Promise<WrittenReport> {
  const abs = resolve(dir);
  const summaries = findExperimentDirs(abs).map(summarizeExperiment);
  const figDir = join(abs, 'figures');
  mkdirSync(figDir, { recursive: true });
  const figureFiles: string[] = [];
  const md: string[] = [
    "# Xception experiments: the paper's claims, retested",
    '',
    'Each experiment trains every variant on several seeds. Final accuracy: the last evaluation of each run on the test (or held-out) set; intervals: 95% Student-t over seeds; differences: Welch intervals. Throughput: training steps per second, measured side by side after the runs where its settings line says so (speed.json), else from the training time of each run (evaluation excluded). Curves: mean over seeds with a ±1 standard deviation band. Verdicts: a claim of several parts agrees when every part does, and does not when any part is decided against it (the paragraph says which parts held); partly agrees means some parts agree and the rest are undecided.',
    '',
  ];
  const html: string[] = [];
  for (const s of summaries) {
    const figs = experimentFigures(s);
    for (const f of figs) {
      const file = join(figDir, f.file);
      writeFileAtomicSync(file, new TextEncoder().encode(`${f.svg}\n`));
      figureFiles.push(file);
      if (opts.png ?? true) {
        const png = file.replace(/\.svg$/, '.png');
        if (await svgToPng(f.svg, png)) figureFiles.push(png);
      }
    }
    md.push(markdownSection(s, figs));
    html.push(htmlSection(s, figs));
  }
  const title = summaries.length === 1 ? `Xception experiment: ${summaries[0]!.manifest.recipe}` : 'Xception experiments';
  const page = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${htmlEscape(title)}</title>
<style>
body { font-family: DejaVu Sans, Helvetica, Arial, sans-serif; max-width: 1340px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; }
th { background: #f4f4f4; }
.settings { color: #555; font-size: 0.9em; }
.verdict { background: #f8f8f0; border-left: 4px solid #b90; padding: 0.6em 1em; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; } figcaption { font-size: 0.85em; color: #555; max-width: 640px; }
</style></head><body>
<h1>${htmlEscape(title)}</h1>
<p>${htmlEscape(md[2]!)}</p>
${html.join('\n')}
</body></html>
`;
  const markdownFile = join(abs, 'report.md');
  const htmlFile = join(abs, 'report.html');
  writeFileAtomicSync(markdownFile, new TextEncoder().encode(`${md.join('\n')}\n`));
  writeFileAtomicSync(htmlFile, new TextEncoder().encode(page));
  return { markdownFile, htmlFile, figureFiles, summaries };
}
