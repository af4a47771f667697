import { OptionError } from '../../core/errors.js';
import { CASE_NAMES } from '../../bench/cases.js';
import { runBench, type BenchOptions, type BenchRow } from '../../bench/run.js';
import { backendFlag, choiceFlag, type FlagSpec, intFlag, numberFlag, type Parsed, parse } from '../args.js';

export const BENCH_HELP = `Usage: xception bench [--json] [--cases a,b] [--repeats N] [--no-peer] [--pytorch] [--backend NAME]
                      [--inference compiled|op-by-op|both] [--precision fp32|bf16|int8]

Measures Xception on this machine, side by side in the same run with a peer:
  infer-b1-299    inference, batch 1 at 299×299         peer: ONNX Runtime (int8: on the QDQ
                                                        export, beside our fp32 plan)
  infer-b8-299    inference, batch 8 at 299×299         peer: as infer-b1-299
  train-b8-299    training step, batch 8 at 299×299     peer: PyTorch with --pytorch, else none;
                                                        with --precision bf16: our fp32 step
  train-b32-64    training step, batch 32 at 64×64      peer: as train-b8-299
                  (small-image stem: 64×64 is below the ImageNet stem's minimum of 71)
A training step is the trainer's: training-mode forward → softmax cross-entropy → backward →
SGD with momentum 0.9. ONNX Runtime (onnxruntime-node, a dev dependency; CPU, 2 intra-op
threads, all graph optimizations) runs the same network with the same weights, exported by the
project's ONNX exporter. PyTorch runs src/bench/scripts/pytorch_train.py (channels-last, SGD
momentum) with a python3 that imports torch (Debian python3-torch; $XCEPTION_PYTHON picks one).

Each case and each peer runs in a child process of its own: its peak resident memory (RSS) is
its own. Figures: images per second (batch / median seconds per step, after a warm-up) and
achieved GFLOP/s (2 × multiply-adds of the convolutions and dense layers; a training step counts
3× the forward FLOPs). Inference on the native backend runs a compiled plan (compileInference:
batch norms folded, ReLU and residual adds fused, blocked layouts; --inference op-by-op runs
model.forward kernel by kernel, --inference both runs each inference case both ways against one
peer run). Training runs op by op; --precision bf16 trains in mixed precision (bf16 convolutions,
fp32 weights and statistics) against our fp32 step in the same run, and runs bf16 compiled
inference. bf16 rows say whether the CPU does bf16 natively (AVX512_BF16 or AMX) or oneDNN
emulates it: emulated rows show "emulated" instead of a ratio. --precision int8 applies to
compiled inference only: its rows run the convolutions in int8 with fixed timing scales (random
weights have nothing to calibrate on; speed does not depend on the scales). Their peer is ONNX
Runtime on the same model exported as QDQ ONNX with the same scales (its int8 kernels); our fp32
plan is measured in the same run as a second comparison (a second table line; fp32Plan and
fp32Ratio in --json). If ONNX Runtime cannot run the QDQ model the row says why and keeps the
fp32 comparison. On a shared machine figures move with the load: compare the ratio.

  --json                  one object per line: {case, backend, path, precision, imagesPerSec, gflops,
                          peer: {name, imagesPerSec, gflops, peakRssMB} | null, ratio,
                          batch, imageSize, peakRssMB, secondsPerStep, replicas, rounds, ratios,
                          hardware (bf16 rows: native | emulated; int8 rows: 'native' with VNNI
                          int8 dot products, else 'emulated'); int8 rows also fp32Plan: {name,
                          imagesPerSec, gflops, peakRssMB} | null and fp32Ratio}
  --cases a,b             run only these cases (${CASE_NAMES.join(', ')})
  --repeats N             timed repeats per case, median reported (default 5)
  --rounds N              measure every case N times, alternating with its peer, and report the
                          medians (ratio: the median of the rounds' ratios; default 1). On a
                          noisy machine one run's ratio moves by about ±10%.
  --warmup N              untimed steps first (default 2)
  --min-time S            each repeat runs enough steps to last S seconds (default 1)
  --no-peer               skip the peers
  --pytorch               also time the training cases in PyTorch as their peer
  --backend NAME          native | wasm | reference (default: native where built, else wasm)
  --inference P           compiled | op-by-op | both (default compiled; native backend only;
                          XCEPTION_COMPILED=0 also turns the compiled path off)
  --precision P           fp32 | bf16 | int8 (default fp32): compiled inference; bf16 also training
  --threads N             the peers' threads (default 2)
  --replicas N[,M…]       training cases: split each step between N data-parallel replicas (worker
                          threads sharing the cores, as xception train --replicas); a list runs
                          each training case once per count, e.g. 1,2 (default 1; path 'dp ×N')
Quick checks (the figures are then not Xception's):
  --size S                every case at S×S (≥ 71 for the 299 cases)
  --width X               channel width multiplier
  --middle-blocks N       middle-flow blocks (default 8)
  -h, --help

Examples:
  xception bench
  xception bench --json --pytorch
  xception bench --cases infer-b1-299 --repeats 9
  xception bench --cases infer-b1-299,infer-b8-299 --inference both
  xception bench --cases train-b32-64 --replicas 1,2 --pytorch
  xception bench --cases infer-b1-299,infer-b8-299 --rounds 3
`;

const BENCH_FLAGS: FlagSpec = {
  json: { type: 'boolean' },
  cases: { type: 'string' },
  repeats: { type: 'string' },
  warmup: { type: 'string' },
  'min-time': { type: 'string' },
  'no-peer': { type: 'boolean' },
  pytorch: { type: 'boolean' },
  backend: { type: 'string' },
  threads: { type: 'string' },
  replicas: { type: 'string' },
  rounds: { type: 'string' },
  size: { type: 'string' },
  inference: { type: 'string' },
  precision: { type: 'string' },
  width: { type: 'string' },
  'middle-blocks': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

export async function benchCommand(argv: string[], out: (s: string) => void): Promise<number> {
  const v = parse('bench', argv, BENCH_FLAGS).values;
  if (v['help']) {
    out(BENCH_HELP);
    return 0;
  }
  const o = benchOptions(v);
  const json = Boolean(v['json']);
  const rows: BenchRow[] = [];
  if (!json) out(`${header()}\n`);
  for await (const row of runBench(o)) {
    rows.push(row);
    out(json ? `${JSON.stringify(row)}\n` : `${tableLine(row)}\n`);
  }
  return 0;
}

/** --cases as a checked list of case names (undefined: every case). */
function casesFlag(value: string | boolean | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const cases = String(value)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (cases.length === 0) throw new OptionError(`--cases needs one or more of ${CASE_NAMES.join(', ')}`);
  const unknown = cases.find((c) => !CASE_NAMES.includes(c as (typeof CASE_NAMES)[number]));
  if (unknown) throw new OptionError(`--cases: unknown case '${unknown}' (known: ${CASE_NAMES.join(', ')})`);
  return cases;
}

/** The bench flags as runBench options, each checked. */
function benchOptions(v: Parsed['values']): BenchOptions {
  const cases = casesFlag(v['cases']);
  if (v['no-peer'] && v['pytorch']) throw new OptionError('--pytorch and --no-peer contradict each other');
  const size = intFlag('size', v['size'], 8);
  const width = numberFlag('width', v['width'], 0.01, 4);
  const middleBlocks = intFlag('middle-blocks', v['middle-blocks'], 0);
  const o: BenchOptions = {
    peer: !v['no-peer'],
    pytorch: Boolean(v['pytorch']),
    scale: {
      ...(size !== undefined ? { size } : {}),
      ...(width !== undefined ? { width } : {}),
      ...(middleBlocks !== undefined ? { middleBlocks } : {}),
    },
    onProgress: (line) => process.stderr.write(`xception bench: ${line}\n`),
  };
  if (cases) o.cases = cases;
  const repeats = intFlag('repeats', v['repeats']);
  if (repeats !== undefined) o.repeats = repeats;
  const warmup = intFlag('warmup', v['warmup']);
  if (warmup !== undefined) o.warmup = warmup;
  const minSeconds = numberFlag('min-time', v['min-time'], 0, 600);
  if (minSeconds !== undefined) o.minSeconds = minSeconds;
  const rounds = intFlag('rounds', v['rounds']);
  if (rounds !== undefined) o.rounds = rounds;
  const threads = intFlag('threads', v['threads']);
  if (threads !== undefined) o.peerThreads = threads;
  const backend = backendFlag(v['backend']);
  if (backend) o.backend = backend;
  if (v['replicas'] !== undefined) {
    const counts = String(v['replicas'])
      .split(',')
      .map((s) => intFlag('replicas', s.trim(), 1)!);
    o.replicas = counts;
  }
  const inference = choiceFlag('inference', v['inference'], ['compiled', 'op-by-op', 'both'] as const);
  if (inference) o.inference = inference;
  const precision = choiceFlag('precision', v['precision'], ['fp32', 'bf16', 'int8'] as const);
  if (precision) o.precision = precision;
  if (size !== undefined && size < 71 && (cases ?? CASE_NAMES).some((c) => c.endsWith('-299'))) {
    throw new OptionError(`--size ${size}: the 299×299 cases use the ImageNet stem, which needs at least 71`);
  }
  return o;
}

const COLUMNS = ['case', 'backend', 'path', 'prec', 'img/s', 'GFLOP/s', 'RSS MB', 'peer', 'peer img/s', 'peer RSS MB', 'ratio'];
const WIDTHS = [13, 9, 9, 5, 9, 8, 7, 20, 10, 11, 6];

function cells(cs: string[]): string {
  return cs
    .map((c, i) => (i <= 3 || i === 7 ? c.padEnd(WIDTHS[i]!) : c.padStart(WIDTHS[i]!)))
    .join('  ')
    .trimEnd();
}

function header(): string {
  return cells(COLUMNS);
}

function tableLine(r: BenchRow): string {
  const f = (x: number, d: number) => x.toFixed(d);
  // int8 rows: our fp32 plan on a second line, in the peer columns.
  const fp32 = r.fp32Plan
    ? `\n${cells([...Array<string>(7).fill(''), r.fp32Plan.name, f(r.fp32Plan.imagesPerSec, 2), f(r.fp32Plan.peakRssMB, 0), `${f(r.fp32Ratio!, 2)}×`])}`
    : '';
  return `${cells([
    r.case,
    r.backend,
    r.replicas > 1 ? `dp ×${r.replicas}` : r.path,
    r.precision,
    f(r.imagesPerSec, 2),
    f(r.gflops, 1),
    f(r.peakRssMB, 0),
    r.peer?.name ?? '—',
    r.peer ? f(r.peer.imagesPerSec, 2) : '—',
    r.peer ? f(r.peer.peakRssMB, 0) : '—',
    r.ratio !== null ? `${f(r.ratio, 2)}×` : r.hardware === 'emulated' ? 'emulated' : '—',
  ])}${fp32}`;
}
