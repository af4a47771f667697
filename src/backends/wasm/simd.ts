/**
 * Which build of the kernels an engine gets. Each module exists twice: plain SIMD128, and relaxed
 * SIMD (wasm/xception*-relaxed.wasm), whose GEMM and depthwise taps fuse their multiply-adds
 * (f32x4.relaxed_madd: an FMA where the CPU has one, about 1.3× the GEMM's speed under V8). Relaxed results may differ
 * in the last bits from one machine to another; plain ones are the same everywhere. No Node
 * built-ins: the browser loader uses this too.
 */
import { OptionError } from '../../core/errors.js';

/** 'auto': relaxed where the engine has relaxed SIMD, else plain. */
export type WasmSimdChoice = 'auto' | 'relaxed' | 'plain';
export const WASM_SIMD_CHOICES: readonly WasmSimdChoice[] = ['auto', 'relaxed', 'plain'];

/** A module of one function: (v128, v128, v128) → f32x4.relaxed_madd of them. */
// biome-ignore format: the bytes in the module's sections, one section a line
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
  0x01, 0x08, 0x01, 0x60, 0x03, 0x7b, 0x7b, 0x7b, 0x01, 0x7b, // type: (v128 v128 v128) → v128
  0x03, 0x02, 0x01, 0x00, // function 0 of type 0
  0x0a, 0x0d, 0x01, 0x0b, 0x00, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02, 0xfd, 0x85, 0x02, 0x0b, // local.get ×3, relaxed_madd
]);

/** Whether this engine compiles relaxed SIMD now (Chromium 114+, Node 22+; Node 20 behind a V8 flag that node.ts turns on). */
export function relaxedSimdSupported(): boolean {
  try {
    return WebAssembly.validate(RELAXED_PROBE);
  } catch {
    return false;
  }
}

/** The file name of a build: xception[-mt][-relaxed].wasm. */
export function kernelFileName(threaded: boolean, relaxed: boolean): string {
  return `xception${threaded ? '-mt' : ''}${relaxed ? '-relaxed' : ''}.wasm`;
}

/**
 * Whether to load the relaxed build for `choice` on an engine that has relaxed SIMD or not
 * (`supported`) and where its module exists or not (`built`). A choice of 'relaxed' that cannot be
 * met is an OptionError saying why.
 */
export function wantsRelaxed(choice: WasmSimdChoice, supported: boolean, built: boolean): boolean {
  if (choice === 'plain') return false;
  if (choice === 'auto') return supported && built;
  if (!built) throw new OptionError('relaxed SIMD was asked for, but its module is not built (wasm/build.sh needs clang-19)');
  if (!supported) throw new OptionError('relaxed SIMD was asked for, but this engine has none (Chromium 114+ and Node 20+ have it)');
  return true;
}

/** Parses a choice (XCEPTION_WASM_SIMD, the page's option); empty or missing is 'auto'. */
export function parseWasmSimd(value: string | undefined, what: string): WasmSimdChoice {
  if (value === undefined || value === '') return 'auto';
  if ((WASM_SIMD_CHOICES as readonly string[]).includes(value)) return value as WasmSimdChoice;
  throw new OptionError(`${what} must be one of ${WASM_SIMD_CHOICES.join(', ')}, got '${value}'`);
}
