/**
 * `xception bench`: each case runs in a child process of its own (so that its peak resident
 * memory is its own), then the same case in the peer — ONNX Runtime for inference (for int8 on
 * the QDQ export of the same model, with our fp32 plan as a second comparison), and with `pytorch`
 * PyTorch for training (scripts/pytorch_train.py) — and the two side by side as a ratio.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BackendError, OptionError } from '../core/errors.js';
import { selectCases, type BenchCase, type CaseName, type ModelScale } from './cases.js';
import { median, type TimingOptions } from './timing.js';
import type { WorkerResult, WorkerSpec } from './worker.js';
import type { Precision } from '../infer/compile.js';
import { int8Hardware } from '../infer/int8-hardware.js';

export interface BenchOptions {
  /** Case names (default: all, in the table's order). */
  cases?: readonly string[];
  /** Timed repeats per case (median reported; default 5). */
  repeats?: number;
  /** Untimed steps first (default 2). */
  warmup?: number;
  /** Each repeat lasts at least this long (default 1 s). */
  minSeconds?: number;
  /** Run the peers (default true). */
  peer?: boolean;
  /** Also run src/bench/scripts/pytorch_train.py as the training cases' peer (default false). */
  pytorch?: boolean;
  /** 'native' | 'wasm' | 'reference' (default: the default backend). */
  backend?: string;
  /** Threads of the peers (default 2, this machine's cores; the native backend uses OpenMP's default). */
  peerThreads?: number;
  /** Smaller networks for quick checks (the figures are then not Xception's). */
  scale?: ModelScale;
  /**
   * Inference cases on the native backend: 'compiled' (default), 'op-by-op', or 'both' (two rows
   * per case, the same peer run once: the before/after comparison in one run).
   */
  inference?: 'compiled' | 'op-by-op' | 'both';
  /**
   * Precision of compiled inference (bf16 needs the compiled path) and of the training cases'
   * convolutions (bf16 mixed precision; their peer is then our fp32 step, measured in the same
   * run); int8 is compiled inference only. Default fp32.
   */
  precision?: Precision;
  /**
   * Training cases: data-parallel replicas (worker threads sharing the cores; default 1, one
   * process thread team). A list runs each case once per value: the comparison in one run.
   */
  replicas?: number | readonly number[];
  /**
   * Measure each case this many times, alternating with its peer (ours, peer, ours, peer, …), and
   * report medians: on a noisy machine one run's ratio moves by ±10% (default 1).
   */
  rounds?: number;
  /** Progress lines (stderr in the command). */
  onProgress?: (line: string) => void;
}

export interface PeerResult {
  name: string;
  imagesPerSec: number;
  gflops: number;
  peakRssMB: number;
}

export interface BenchRow {
  case: CaseName;
  backend: string;
  /** 'compiled' (an inference plan) or 'op-by-op' (kernel by kernel; always so for training). */
  path: 'compiled' | 'op-by-op';
  precision: Precision;
  imagesPerSec: number;
  /** Achieved GFLOP/s: counted FLOPs (2 × multiply-adds of convs and dense; training 3× forward) per second. */
  gflops: number;
  peer: PeerResult | null;
  /** imagesPerSec / peer.imagesPerSec; null without a peer, and for bf16 where the CPU only emulates it. */
  ratio: number | null;
  /**
   * bf16 rows: whether this CPU does bf16 natively (AVX512_BF16, AMX) or oneDNN emulates it (no
   * faster than fp32); int8 rows: whether it has int8 dot products (VNNI: 'native') or not.
   */
  hardware?: 'native' | 'emulated';
  batch: number;
  imageSize: number;
  /** Peak resident memory of the case's process, MB. */
  peakRssMB: number;
  /** Median seconds per step (one batch). */
  secondsPerStep: number;
  /** Training cases: data-parallel replicas the step was split between (1 = none). */
  replicas: number;
  /** Rounds measured (see BenchOptions.rounds); the figures above are their medians. */
  rounds: number;
  /** Each round's ratio to its peer (the ratio above is their median). */
  ratios: number[];
  /** int8 inference rows: our fp32 plan, measured in the same rounds (null without peers). */
  fp32Plan?: PeerResult | null;
  /** int8 inference rows: imagesPerSec / fp32Plan.imagesPerSec (the median of the rounds'). */
  fp32Ratio?: number | null;
}

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));
/**
 * The PyTorch script in the source tree: tsc does not copy it to dist/, so from dist/src/bench
 * it is ../../../src/bench/scripts/pytorch_train.py (the npm package leaves it out).
 */
export const PYTORCH_SCRIPT = fileURLToPath(new URL('../../../src/bench/scripts/pytorch_train.py', import.meta.url));

interface ChildOutput {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runChild(command: string, args: string[]): Promise<ChildOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '',
      stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The last JSON object line of a child's stdout. */
function lastJsonLine<T>(out: ChildOutput, what: string): T {
  const lines = out.stdout.split('\n').filter((l) => l.trim().startsWith('{'));
  if (out.code !== 0 || lines.length === 0) {
    const tail = out.stderr.trim().split('\n').slice(-6).join('\n');
    throw new BackendError(`${what} failed (exit code ${out.code})${tail ? `:\n${tail}` : ''}`);
  }
  return JSON.parse(lines[lines.length - 1]!) as T;
}

/** Runs a worker; what it said on stderr (e.g. "native backend not available") goes to `note`. */
async function runWorker(spec: WorkerSpec, note: (line: string) => void): Promise<WorkerResult> {
  const out = await runChild(process.execPath, [WORKER, JSON.stringify(spec)]);
  const result = lastJsonLine<WorkerResult>(out, `bench case ${spec.case.name} (${spec.engine})`);
  for (const line of out.stderr.split('\n')) if (line.trim()) note(`${spec.case.name} (${spec.engine}): ${line.trim()}`);
  return result;
}

/**
 * A Python that can `import torch`: $XCEPTION_PYTHON, else `python3` on the PATH, else Debian's
 * /usr/bin/python3 (python3-torch installs there, which a pyenv or venv python3 does not see).
 * Null when none can.
 */
export function findPytorchPython(): string | null {
  const env = process.env['XCEPTION_PYTHON'];
  for (const python of env ? [env] : ['python3', '/usr/bin/python3']) {
    const r = spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' });
    if (r.status === 0) return python;
  }
  return null;
}

interface PytorchResult {
  torch: string;
  imagesPerSec: number;
  peakRssMB: number;
}

async function runPytorch(python: string, c: BenchCase, scale: ModelScale, timing: TimingOptions, threads: number): Promise<PytorchResult> {
  const args = [
    PYTORCH_SCRIPT,
    '--case',
    c.name,
    '--batch',
    String(c.batch),
    '--size',
    String(scale.size ?? c.size),
    '--stem',
    c.stem,
    '--width',
    String(scale.width ?? 1),
    '--middle-blocks',
    String(scale.middleBlocks ?? 8),
    '--classes',
    '1000',
    '--warmup',
    String(timing.warmup),
    '--repeats',
    String(timing.repeats),
    '--min-time',
    String(timing.minSeconds),
    '--threads',
    String(threads),
  ];
  return lastJsonLine<PytorchResult>(await runChild(python, args), `PyTorch case ${c.name} (src/bench/scripts/pytorch_train.py)`);
}

function check(name: string, v: number | undefined, min: number, integer: boolean): void {
  if (v === undefined) return;
  if (!Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) {
    throw new OptionError(`bench: ${name} must be ${integer ? 'an integer' : 'a number'} ≥ ${min}, got ${v}`);
  }
}

/** The options checked and filled in with their defaults; `python` is set when PyTorch is the training peer. */
interface BenchPlan {
  cases: BenchCase[];
  rounds: number;
  replicaCounts: number[];
  paths: Array<'compiled' | 'op-by-op'>;
  timing: TimingOptions;
  scale: ModelScale;
  peerThreads: number;
  peer: boolean;
  python: string | null;
  precision: BenchOptions['precision'];
  backend: string | undefined;
  progress: (line: string) => void;
}

function planBench(o: BenchOptions): BenchPlan {
  const cases = selectCases(o.cases);
  check('repeats', o.repeats, 1, true);
  check('warmup', o.warmup, 1, true);
  check('minSeconds', o.minSeconds, 0, false);
  check('peerThreads', o.peerThreads, 1, true);
  check('rounds', o.rounds, 1, true);
  if (o.backend !== undefined && !['native', 'wasm', 'reference'].includes(o.backend)) {
    throw new OptionError(`bench: backend must be 'native', 'wasm' or 'reference', got '${o.backend}'`);
  }
  if (o.inference !== undefined && !['compiled', 'op-by-op', 'both'].includes(o.inference)) {
    throw new OptionError(`bench: inference must be 'compiled', 'op-by-op' or 'both', got '${o.inference}'`);
  }
  if (o.precision !== undefined && !['fp32', 'bf16', 'int8'].includes(o.precision)) {
    throw new OptionError(`bench: precision must be 'fp32', 'bf16' or 'int8', got '${o.precision}'`);
  }
  if (o.precision === 'int8' && (o.inference === 'op-by-op' || o.inference === 'both' || o.backend === 'reference'))
    throw new OptionError('bench: precision int8 runs compiled plans on the native backend only');
  if (o.precision === 'bf16' && o.backend === 'reference')
    throw new OptionError('bench: precision bf16 runs on the native backend, not the reference backend');
  const replicaCounts = o.replicas === undefined ? [1] : typeof o.replicas === 'number' ? [o.replicas] : [...o.replicas];
  if (replicaCounts.length === 0) throw new OptionError('bench: replicas must list at least one count');
  for (const r of replicaCounts) check('replicas', r, 1, true);
  const peer = o.peer ?? true;
  return {
    cases,
    rounds: o.rounds ?? 1,
    replicaCounts,
    paths: o.inference === 'both' ? ['op-by-op', 'compiled'] : [o.inference ?? 'compiled'],
    timing: { warmup: o.warmup ?? 2, repeats: o.repeats ?? 5, minSeconds: o.minSeconds ?? 1 },
    scale: o.scale ?? {},
    peerThreads: o.peerThreads ?? 2,
    peer,
    python: o.pytorch && peer ? pytorchPeer() : null,
    precision: o.precision,
    backend: o.backend,
    progress: o.onProgress ?? (() => {}),
  };
}

/** The Python that runs the PyTorch peer, and its script; a BackendError when either is missing. */
function pytorchPeer(): string {
  const python = findPytorchPython();
  if (!python)
    throw new BackendError(
      'bench: --pytorch needs a python3 that can import torch (none found; Debian: apt-get install python3-torch, or set XCEPTION_PYTHON)',
    );
  if (!existsSync(PYTORCH_SCRIPT))
    throw new BackendError(`bench: --pytorch needs ${PYTORCH_SCRIPT} (it ships with the source tree, not the npm package)`);
  return python;
}

/** Runs the cases one after another, yielding each row as soon as it and its peer are measured. */
export async function* runBench(o: BenchOptions = {}): AsyncGenerator<BenchRow> {
  const plan = planBench(o);
  for (const c of plan.cases) yield* benchCase(c, plan);
}

/** One case's rows: every variant (inference path or replica count) for every round, then medians. */
async function* benchCase(c: BenchCase, plan: BenchPlan): AsyncGenerator<BenchRow> {
  const { rounds, scale, progress } = plan;
  const imageSize = scale.size ?? c.size;
  progress(`${c.name}: xception, batch ${c.batch} at ${imageSize}×${imageSize}…`);
  // int8's ONNX model is the QDQ export with the int8 plan's calibration (the xception worker writes it).
  const onnxPeer = plan.peer && c.kind === 'infer';
  const onnxPath = onnxPeer ? join(mkdtempSync(join(tmpdir(), 'xception-bench-')), `${c.name}.onnx`) : undefined;
  // Inference rows: one per path; training rows: one per replica count.
  const variants: Array<{ path: 'compiled' | 'op-by-op'; replicas: number }> =
    c.kind === 'infer'
      ? plan.paths.map((path) => ({ path, replicas: 1 }))
      : plan.replicaCounts.map((replicas) => ({ path: 'op-by-op' as const, replicas }));
  // measured[v][r]: variant v in round r. Each round runs every variant, then the peer once.
  const measured: BenchRow[][] = variants.map(() => []);
  try {
    for (let round = 0; round < rounds; round++) {
      if (rounds > 1) progress(`${c.name}: round ${round + 1} of ${rounds}`);
      let previous: BenchRow | undefined;
      for (const [v, { path, replicas }] of variants.entries()) {
        const spec: WorkerSpec = {
          engine: 'xception',
          case: c,
          scale,
          timing: plan.timing,
          threads: plan.peerThreads,
          inference: path,
          replicas,
          ...(plan.precision ? { precision: plan.precision } : {}),
          ...(plan.backend ? { backend: plan.backend } : {}),
          ...(onnxPath ? { onnxPath } : {}),
        };
        if (variants.length > 1) progress(`${c.name}: ${c.kind === 'infer' ? path : `${replicas} replica(s)`}…`);
        const row = await runCase(c, spec, previous === undefined ? onnxPath : undefined, imageSize, previous, plan);
        previous = row;
        if (rounds === 1) yield row;
        else measured[v]!.push(row);
      }
    }
    if (rounds > 1) for (const rows of measured) yield medianRow(rows);
  } finally {
    if (onnxPath) rmSync(dirname(onnxPath), { recursive: true, force: true });
  }
}

/**
 * Our engine on one case, then its peer (and for int8 our fp32 plan), unless those were measured
 * with the previous row of this round (`previous`: same network, same weights).
 */
async function runCase(
  c: BenchCase,
  spec: WorkerSpec,
  onnxPath: string | undefined,
  imageSize: number,
  previous: BenchRow | undefined,
  plan: BenchPlan,
): Promise<BenchRow> {
  // A stale model of an earlier round must not stand in for one this round failed to write.
  if (onnxPath) rmSync(onnxPath, { force: true });
  const own = await runWorker(spec, plan.progress);
  const stepFlops = own.forwardFlopsPerImage * c.batch * (c.kind === 'train' ? 3 : 1);
  const peerResult = previous ? previous.peer : await measurePeer(c, spec, onnxPath, stepFlops, plan);
  const int8Infer = own.precision === 'int8' && c.kind === 'infer';
  const fp32Plan =
    !int8Infer || !plan.peer ? null : previous ? (previous.fp32Plan ?? null) : await measureFp32Plan(c, spec, stepFlops, plan);
  const imagesPerSec = c.batch / own.secondsPerStep;
  // Emulated bf16 is a correctness path: a speed ratio would only measure the emulation.
  const ratio = peerResult && own.bf16Hardware !== 'emulated' ? imagesPerSec / peerResult.imagesPerSec : null;
  const fp32Ratio = fp32Plan ? imagesPerSec / fp32Plan.imagesPerSec : null;
  return {
    case: c.name,
    backend: own.engine,
    path: own.path,
    precision: own.precision,
    ...(own.precision === 'int8' ? { hardware: int8Hardware() } : {}),
    imagesPerSec,
    gflops: stepFlops / own.secondsPerStep / 1e9,
    peer: peerResult,
    ratio,
    ...(own.bf16Hardware ? { hardware: own.bf16Hardware } : {}),
    batch: c.batch,
    imageSize,
    peakRssMB: own.peakRssMB,
    secondsPerStep: own.secondsPerStep,
    replicas: spec.replicas ?? 1,
    rounds: 1,
    ratios: ratio !== null ? [ratio] : [],
    ...(int8Infer ? { fp32Plan, fp32Ratio } : {}),
  };
}

/** Our fp32 plan on an int8 inference case: the int8 rows' second comparison, beside ONNX Runtime. */
async function measureFp32Plan(c: BenchCase, spec: WorkerSpec, stepFlops: number, plan: BenchPlan): Promise<PeerResult> {
  plan.progress(`${c.name}: xception fp32 plan (the int8 row's second comparison)…`);
  const { onnxPath: _written, ...fp32Spec } = spec;
  const r = await runWorker({ ...fp32Spec, precision: 'fp32' }, plan.progress);
  return peerOf('xception fp32 plan', r, c, stepFlops);
}

/** A peer's figures from its worker's measurement of the same case. */
function peerOf(name: string, r: { secondsPerStep: number; peakRssMB: number }, c: BenchCase, stepFlops: number): PeerResult {
  return { name, imagesPerSec: c.batch / r.secondsPerStep, gflops: stepFlops / r.secondsPerStep / 1e9, peakRssMB: r.peakRssMB };
}

/** ONNX Runtime for inference (a failure there only costs the peer), PyTorch for training; else none. */
async function measurePeer(
  c: BenchCase,
  spec: WorkerSpec,
  onnxPath: string | undefined,
  stepFlops: number,
  plan: BenchPlan,
): Promise<PeerResult | null> {
  const { progress, python } = plan;
  if (plan.peer && c.kind === 'train' && spec.precision === 'bf16') {
    progress(`${c.name}: fp32 step (the bf16 step's peer)…`);
    const r = await runWorker({ ...spec, precision: 'fp32' }, progress);
    return peerOf(`${r.engine} fp32`, r, c, stepFlops);
  }
  if (onnxPath) {
    progress(`${c.name}: onnxruntime${spec.precision === 'int8' ? ' on the QDQ export' : ''}…`);
    if (!existsSync(onnxPath)) {
      progress(`${c.name}: no peer: the xception worker wrote no ONNX model (see above)`);
      return null;
    }
    try {
      const r = await runWorker({ ...spec, engine: 'onnxruntime' }, progress);
      return peerOf(r.engine, r, c, stepFlops);
    } catch (e) {
      progress(`${c.name}: no peer: ${(e as Error).message}`);
      return null;
    }
  }
  if (python && c.kind === 'train') {
    progress(`${c.name}: pytorch…`);
    const r = await runPytorch(python, c, plan.scale, plan.timing, plan.peerThreads);
    return {
      name: `pytorch ${r.torch}`,
      imagesPerSec: r.imagesPerSec,
      gflops: (r.imagesPerSec * stepFlops) / c.batch / 1e9,
      peakRssMB: r.peakRssMB,
    };
  }
  return null;
}

/** One row from the rounds of a case: medians of speeds and ratios, the largest peak memory. */
export function medianRow(rows: readonly BenchRow[]): BenchRow {
  if (rows.length === 0) throw new OptionError('bench: no rounds to combine');
  const first = rows[0]!;
  const mid = (f: (r: BenchRow) => number) => median(rows.map(f));
  const ratios = rows.flatMap((r) => r.ratios);
  const fp32Ratios = rows.map((r) => r.fp32Ratio).filter((x): x is number => typeof x === 'number');
  return {
    ...first,
    imagesPerSec: mid((r) => r.imagesPerSec),
    gflops: mid((r) => r.gflops),
    secondsPerStep: mid((r) => r.secondsPerStep),
    peakRssMB: Math.max(...rows.map((r) => r.peakRssMB)),
    peer: medianPeer(rows.map((r) => r.peer)),
    ratio: ratios.length === 0 ? null : median(ratios),
    rounds: rows.length,
    ratios,
    ...(first.fp32Plan !== undefined
      ? { fp32Plan: medianPeer(rows.map((r) => r.fp32Plan ?? null)), fp32Ratio: fp32Ratios.length === 0 ? null : median(fp32Ratios) }
      : {}),
  };
}

/** One peer from the rounds' measurements of it: median speeds, the largest peak memory. */
function medianPeer(measured: ReadonlyArray<PeerResult | null>): PeerResult | null {
  const peers = measured.filter((p): p is PeerResult => p !== null);
  if (peers.length === 0) return null;
  return {
    name: peers[0]!.name,
    imagesPerSec: median(peers.map((p) => p.imagesPerSec)),
    gflops: median(peers.map((p) => p.gflops)),
    peakRssMB: Math.max(...peers.map((p) => p.peakRssMB)),
  };
}
