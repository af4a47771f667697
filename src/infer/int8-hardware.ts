/**
 * Whether this CPU runs int8 convolutions natively, read from /proc/cpuinfo: Node only, so it
 * lives apart from the plan code the browser build imports.
 */
import { readFileSync } from 'node:fs';

let vnniCache: boolean | null = null;

/**
 * 'native' when this CPU has int8 dot products (AVX-512 VNNI or AVX-VNNI), where oneDNN's int8
 * convolutions beat fp32; else 'emulated' (correct, often no faster than fp32).
 */
export function int8Hardware(): 'native' | 'emulated' {
  if (vnniCache === null) {
    try {
      const flags =
        readFileSync('/proc/cpuinfo', 'utf8')
          .match(/^flags\s*:(.*)$/m)?.[1]
          ?.split(/\s+/) ?? [];
      vnniCache = flags.includes('avx512_vnni') || flags.includes('avx_vnni');
    } catch {
      vnniCache = false;
    }
  }
  return vnniCache ? 'native' : 'emulated';
}
