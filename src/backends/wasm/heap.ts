/**
 * The wasm backend's allocator over its one `WebAssembly.Memory` (one memory, so worker threads
 * can later share it): free blocks kept sorted by address, best fit, neighbours merged on free,
 * and the memory grown in 64 KiB pages when no free block fits. Growing past the limit (4 GiB,
 * wasm32's ceiling, or a lower one) is an OutOfMemoryError, never a trap.
 *
 * Growth detaches the old ArrayBuffer, so views are taken from `memory.buffer` on every use.
 */
import { OutOfMemoryError } from '../../core/errors.js';

const PAGE = 65536;
/** Blocks start on 64-byte boundaries (a cache line; SIMD loads never straddle one). */
const ALIGN = 64;
export const WASM_MAX_BYTES = 2 ** 32;

interface Block {
  offset: number;
  bytes: number;
}

export class WasmHeap {
  private readonly free: Block[] = [];
  private readonly used = new Map<number, number>();
  private top: number;
  private liveBytes = 0;
  private peakBytes = 0;

  constructor(
    readonly memory: WebAssembly.Memory,
    heapBase: number,
    private limitBytes: number = WASM_MAX_BYTES,
  ) {
    this.top = Math.ceil(heapBase / ALIGN) * ALIGN;
  }

  /** Memory the heap may grow to (bytes, at most 4 GiB). */
  get limit(): number {
    return this.limitBytes;
  }

  setLimit(bytes: number): void {
    this.limitBytes = Math.min(bytes, WASM_MAX_BYTES);
  }

  /** Live and peak bytes in blocks, the memory's size, and the end of the heap (`topBytes`). */
  stats(): { liveBytes: number; peakBytes: number; memoryBytes: number; topBytes: number } {
    return { liveBytes: this.liveBytes, peakBytes: this.peakBytes, memoryBytes: this.memory.buffer.byteLength, topBytes: this.top };
  }

  /** The byte offset of a new block of at least `bytes` bytes (contents undefined). */
  alloc(bytes: number, what: string): number {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    const offset = this.takeFree(size) ?? this.takeTop(size, what);
    this.used.set(offset, size);
    this.liveBytes += size;
    this.peakBytes = Math.max(this.peakBytes, this.liveBytes);
    return offset;
  }

  release(offset: number): void {
    const size = this.used.get(offset);
    if (size === undefined) return;
    this.used.delete(offset);
    this.liveBytes -= size;
    this.insertFree({ offset, bytes: size });
  }

  private takeFree(size: number): number | null {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const b = this.free[i]!;
      if (b.bytes >= size && (best < 0 || b.bytes < this.free[best]!.bytes)) {
        best = i;
        if (b.bytes === size) break;
      }
    }
    if (best < 0) return null;
    const b = this.free[best]!;
    const offset = b.offset;
    if (b.bytes === size) this.free.splice(best, 1);
    else {
      b.offset += size;
      b.bytes -= size;
    }
    return offset;
  }

  /** A block at the top of the heap, after absorbing a free block that ends there. */
  private takeTop(size: number, what: string): number {
    const last = this.free[this.free.length - 1];
    const start = last && last.offset + last.bytes === this.top ? last.offset : this.top;
    const end = start + size;
    if (end > this.limitBytes) {
      throw new OutOfMemoryError(
        `wasm: ${what} needs ${mib(size)} MiB, past the wasm memory limit of ${mib(this.limitBytes)} MiB ` +
          `(${mib(this.liveBytes)} MiB live)`,
      );
    }
    this.growTo(end, what);
    if (start !== this.top) this.free.pop();
    this.top = end;
    return start;
  }

  private growTo(end: number, what: string): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const pages = Math.ceil((end - have) / PAGE);
    try {
      this.memory.grow(pages);
    } catch (e) {
      throw new OutOfMemoryError(`wasm: ${what}: the engine refused to grow memory to ${mib(have + pages * PAGE)} MiB (${String(e)})`);
    }
  }

  private insertFree(block: Block): void {
    let lo = 0,
      hi = this.free.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.free[mid]!.offset < block.offset) lo = mid + 1;
      else hi = mid;
    }
    this.free.splice(lo, 0, block);
    const next = this.free[lo + 1];
    if (next && block.offset + block.bytes === next.offset) {
      block.bytes += next.bytes;
      this.free.splice(lo + 1, 1);
    }
    const prev = this.free[lo - 1];
    if (prev && prev.offset + prev.bytes === block.offset) {
      prev.bytes += block.bytes;
      this.free.splice(lo, 1);
    }
  }
}

function mib(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(1);
}
