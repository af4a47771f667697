/**
 * Where a result came from: the code (commit, else the package version), the backend and its
 * build (oneDNN version, OpenMP threads; the wasm module's SIMD), the CPU (model and the SIMD flags that select oneDNN's
 * kernels), Node and the date. Every run records it, so that a report can say which builds and
 * machines produced its numbers.
 *
 * Why it matters: a seed fixes the data order, the initialization and the augmentation, but not
 * the floating-point summation order. oneDNN picks its kernels by the CPU's instruction set
 * (AVX2 / AVX-512 / VNNI / bf16), and the thread count splits its reductions (batch-norm
 * statistics, weight gradients) differently; the last bits of each step differ, and over a few
 * hundred SGD steps the runs drift apart like different seeds. Measured (2026-12-02, AMD EPYC
 * Zen 5, oneDNN 2.6.3, a 16-step run of a tiny Xception): the same build and thread count repeat
 * the test loss bit for bit (2.3383347988128662 twice); 1 thread instead of 2 gives 2.30409…,
 * ONEDNN_MAX_CPU_ISA=AVX2 2.30855…, the reference backend 2.34595… — while AVX512_CORE
 * repeats the default's digits. Verdicts therefore have to hold
 * statistically across builds (see `experiment run --check`), not digit for digit.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getBackend } from '../core/engine.js';

export interface Provenance {
  /** `git rev-parse HEAD` of the package's checkout (with '-dirty' when it has changes), or `v<version>`. */
  commit: string;
  backend: string;
  /** oneDNN version the native backend runs on, when it is the backend. */
  onednn: string | null;
  /** OpenMP threads (OMP_NUM_THREADS, or the backend's count, or 'default'). */
  threads: string;
  /** ONEDNN_MAX_CPU_ISA (or DNNL_MAX_CPU_ISA) when set: it caps the kernels oneDNN may pick. */
  onednnMaxIsa: string | null;
  /**
   * The wasm backend's build, when it is the backend: 'relaxed' SIMD fuses multiply-adds where
   * the CPU has FMA (its last bits differ by machine), 'plain' rounds the same everywhere. Absent
   * in runs recorded before it was.
   */
  wasmSimd?: 'relaxed' | 'plain' | null;
  cpuModel: string;
  /** The SIMD feature flags that decide oneDNN's kernels (from /proc/cpuinfo; empty elsewhere). */
  cpuFlags: string[];
  cpuCount: number;
  node: string;
  platform: string;
  /** ISO 8601, UTC. */
  date: string;
}

/** The flags that change which kernels oneDNN runs (and so the rounding of the results). */
const KERNEL_FLAG = /^(sse4_2|avx|avx2|fma|f16c|avx512\w*|avx_vnni\w*|amx\w*)$/;

/** The package root (two folders above dist/src/experiments or src/experiments). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  return process.cwd();
}

/** Paths whose changes leave the code as committed: a run writes its own results into results/. */
const NOT_CODE = [':(exclude)results', ':(exclude)docs', ':(exclude)*.md'];

/** The checkout's commit, '-dirty' when tracked code differs from it; else the package version. */
export function commitOf(root: string): string {
  try {
    const opts = {
      cwd: root,
      encoding: 'utf8' as const,
      stdio: ['ignore', 'pipe', 'ignore'] as ['ignore', 'pipe', 'ignore'],
      timeout: 5000,
    };
    const head = execFileSync('git', ['rev-parse', 'HEAD'], opts).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', '.', ...NOT_CODE], opts).trim() !== '';
    if (/^[0-9a-f]{40}$/.test(head)) return dirty ? `${head}-dirty` : head;
  } catch {
    // No git, or not a checkout (an installed package): the version is what identifies the code.
  }
  try {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? `v${pkg.version}` : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** CPU model and kernel-relevant flags: /proc/cpuinfo on Linux, os.cpus() (model only) elsewhere. */
export function cpuInfo(cpuinfoText?: string): { model: string; flags: string[] } {
  let text = cpuinfoText;
  if (text === undefined && existsSync('/proc/cpuinfo')) {
    try {
      text = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      text = undefined;
    }
  }
  const field = (name: string) => text?.match(new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm'))?.[1]?.trim();
  const model = field('model name') ?? cpus()[0]?.model ?? 'unknown';
  const flags = (field('flags') ?? '').split(/\s+/).filter((f) => KERNEL_FLAG.test(f));
  return { model, flags: [...new Set(flags)].sort() };
}

/** The provenance of a run made now, with the current backend. */
export function currentProvenance(): Provenance {
  const backend = getBackend();
  const cpu = cpuInfo();
  const native = backend as { onednnVersion?: unknown; threads?: () => number; simd?: () => 'relaxed' | 'plain' };
  const threads = process.env['OMP_NUM_THREADS'] ?? (typeof native.threads === 'function' ? String(native.threads()) : 'default');
  return {
    commit: commitOf(packageRoot()),
    backend: backend.name,
    onednn: typeof native.onednnVersion === 'string' ? native.onednnVersion : null,
    threads,
    onednnMaxIsa: process.env['ONEDNN_MAX_CPU_ISA'] ?? process.env['DNNL_MAX_CPU_ISA'] ?? null,
    wasmSimd: typeof native.simd === 'function' ? native.simd() : null,
    cpuModel: cpu.model,
    cpuFlags: cpu.flags,
    cpuCount: cpus().length,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    date: new Date().toISOString(),
  };
}

/** One line for reports: "commit abc1234, onednn (oneDNN 2.6, 2 threads), AMD EPYC … [avx512f, …], node v20…, 2026-12-02". */
export function provenanceText(p: Provenance): string {
  const build = [
    p.onednn ? `oneDNN ${p.onednn}` : null,
    p.onednnMaxIsa ? `max ISA ${p.onednnMaxIsa}` : null,
    p.wasmSimd ? `${p.wasmSimd} SIMD` : null,
    `${p.threads} threads`,
  ]
    .filter(Boolean)
    .join(', ');
  const flags = p.cpuFlags.length ? ` [${p.cpuFlags.join(' ')}]` : '';
  return `commit ${p.commit.slice(0, 12)}${p.commit.endsWith('-dirty') ? ' (uncommitted changes)' : ''}, backend ${p.backend} (${build}), ${p.cpuModel}${flags} × ${p.cpuCount}, node ${p.node} ${p.platform}, ${p.date.slice(0, 10)}`;
}
