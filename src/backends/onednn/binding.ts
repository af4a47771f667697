/**
 * The raw addon interface (native/addon.cc) and how to find and load it. Only this backend calls
 * it; everything it receives has been validated in `backend.ts` first.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** A native buffer: an N-API external owned by the addon. Opaque to TypeScript. */
export type NativeBuffer = { readonly __nativeBuffer: unique symbol };

export interface NativeStats {
  /** Native buffers alive (not yet disposed or collected) and their bytes. */
  buffers: number;
  bytes: number;
  /**
   * Freed native memory kept resident for reuse by later tensors (large blocks live in one arena,
   * best fit, coalesced; native/arena.cc).
   */
  pooledBytes: number;
  /** The arena's resident size (live blocks plus pooledBytes). */
  arenaBytes: number;
  /** The most the arena's blocks held at once since the last trimPool(). */
  peakLiveBytes: number;
  /** oneDNN primitive sets cached per shape, with lookups that found / built one. */
  cachedPrimitives: number;
  cacheHits: number;
  cacheMisses: number;
  /** Compiled inference plans alive (their memory is counted in buffers/bytes). */
  plans: number;
}

/** A compiled inference plan owned by the addon (native/plan.h). Opaque to TypeScript. */
export type NativePlan = { readonly __nativePlan: unique symbol };

export interface NativePlanInfo {
  arenaBytes: number;
  weightBytes: number;
  scratchpadBytes: number;
  inputSize: number;
  outputSize: number;
  /** One line per executed primitive: what it computes and oneDNN's implementation. */
  steps: string[];
}

/**
 * How this CPU does bf16 arithmetic, as oneDNN sees it (ONEDNN_MAX_CPU_ISA included): 'native'
 * (AVX512_BF16 or AMX), 'emulated' (AVX-512 without them: oneDNN rounds in software, correct but
 * no faster than float32) or 'unsupported' (no AVX-512: oneDNN 2.6 has no fast bf16 kernels).
 */
export type Bf16Hardware = 'native' | 'emulated' | 'unsupported';

export interface NativeAddon {
  /** cpuIsa: the instruction set oneDNN dispatches to, by its name (e.g. 'avx512_core_bf16'). */
  version(): { abi: number; onednn: string; openmp: boolean; cpuIsa: string; bf16: Bf16Hardware };
  /** OpenMP threads for the kernels the calling thread runs (a per-thread setting). */
  setThreads(n: number): void;
  threads(): number;
  alloc(size: number, zero: boolean): NativeBuffer;
  upload(data: Float32Array): NativeBuffer;
  download(b: NativeBuffer, out: Float32Array): void;
  free(b: NativeBuffer): void;
  /** Runs one kernel; returns its new buffers followed by its scalar results. */
  run(op: string, inputs: NativeBuffer[], nums: number[], ints: Int32Array | undefined): Array<NativeBuffer | number>;
  /**
   * oneDNN implementation picked for a convolution: which = 0 forward, 1 backward data, 2 filter;
   * bf16: the one the `.bf16` kernels run (a float32 one where they fall back).
   */
  describeConv(which: 0 | 1 | 2, nums: number[], bf16: boolean): string;
  stats(): NativeStats;
  /** Returns the pooled memory to the system. */
  trimPool(): void;
  /** Keeps at most this many bytes of freed memory for reuse (process-wide). */
  setPoolLimit(bytes: number): void;
  planCreate(spec: Float64Array, weights: Float32Array[]): NativePlan;
  planRun(plan: NativePlan, input: NativeBuffer, output: NativeBuffer): void;
  planProfile(plan: NativePlan, input: NativeBuffer, output: NativeBuffer): number[];
  planSetWeights(plan: NativePlan, weights: Float32Array[]): void;
  planInfo(plan: NativePlan): NativePlanInfo;
  planFree(plan: NativePlan): void;
}

/** The ABI this TypeScript expects; native/addon.cc `kAbiVersion` must match. */
export const EXPECTED_ABI = 4;

const ADDON_FILE = path.join('build', 'Release', 'xception_native.node');

/** The package root: the first directory upwards that holds binding.gyp and package.json. */
function packageRoot(): string | null {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'binding.gyp')) && existsSync(path.join(dir, 'package.json'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

export type AddonLoad = { addon: NativeAddon; path: string } | { addon: null; reason: string; path?: string };

/**
 * Loads the addon once. Never throws: every failure becomes a reason string.
 * XCEPTION_NATIVE=0 disables it; XCEPTION_NATIVE_ADDON=/path/to/file.node overrides the location.
 */
export function loadAddon(): AddonLoad {
  if (process.env.XCEPTION_NATIVE === '0') return { addon: null, reason: 'disabled by XCEPTION_NATIVE=0' };
  let file = process.env.XCEPTION_NATIVE_ADDON;
  if (!file) {
    const root = packageRoot();
    if (!root) return { addon: null, reason: 'package root (binding.gyp) not found next to the module' };
    file = path.join(root, ADDON_FILE);
  }
  if (!existsSync(file)) {
    return { addon: null, path: file, reason: `native addon not built: ${file} is missing (run \`npm run build:native\`)` };
  }
  if (!file.endsWith('.node')) return { addon: null, path: file, reason: `native addon path must end in .node: ${file}` };
  try {
    // dlopen, not require: only ever a native library, never a JavaScript file run by mistake.
    const mod = { exports: {} as unknown };
    process.dlopen(mod, file);
    const addon = mod.exports as NativeAddon;
    const v = addon.version();
    if (v.abi !== EXPECTED_ABI) {
      return {
        addon: null,
        path: file,
        reason: `native addon is stale (ABI ${v.abi}, expected ${EXPECTED_ABI}); run \`npm run build:native\``,
      };
    }
    return { addon, path: file };
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    return { addon: null, path: file, reason: `native addon failed to load: ${msg}` };
  }
}
