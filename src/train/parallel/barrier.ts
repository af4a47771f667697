/**
 * A reusable barrier for the replicas of a data-parallel run, on a SharedArrayBuffer so that
 * worker threads meet without a round trip through the main thread. Any party (or the main
 * thread, when a worker dies) can abort it: every waiter then throws instead of waiting forever.
 */
import { XceptionError } from '../../core/errors.js';

const COUNT = 0;
const GENERATION = 1;
const ABORTED = 2;
/** Then one int per party: 1 + the generation it last arrived at (0: never), to name the late. */
export const BARRIER_INTS = 3;

export class ReplicaAbortedError extends XceptionError {}

/** A party waited longer than the stall timeout for the others to arrive. */
export class ReplicaStalledError extends XceptionError {}

/** How long a party waits for the others before the run is declared stalled. */
export const DEFAULT_STALL_MS = 60_000;

export class SharedBarrier {
  private readonly ctrl: Int32Array;

  /** `memory` is from SharedBarrier.memory(parties), zeroed when the run starts; `parties` threads meet. */
  constructor(
    memory: SharedArrayBuffer,
    readonly parties: number,
    readonly stallMs = DEFAULT_STALL_MS,
  ) {
    this.ctrl = new Int32Array(memory, 0, BARRIER_INTS + parties);
  }

  static memory(parties: number): SharedArrayBuffer {
    return new SharedArrayBuffer((BARRIER_INTS + parties) * Int32Array.BYTES_PER_ELEMENT);
  }

  get aborted(): boolean {
    return Atomics.load(this.ctrl, ABORTED) !== 0;
  }

  /** Wakes every waiter, now and later, with a ReplicaAbortedError. */
  abort(): void {
    Atomics.store(this.ctrl, ABORTED, 1);
    Atomics.add(this.ctrl, GENERATION, 1);
    Atomics.notify(this.ctrl, GENERATION);
  }

  /**
   * Blocks until all parties have arrived (Atomics.wait: worker threads only). After `stallMs`
   * without them, aborts the barrier and throws ReplicaStalledError naming the parties missing.
   */
  arrive(rank: number): void {
    if (this.aborted) throw new ReplicaAbortedError('another replica failed');
    // The generation cannot move on before this party has arrived, so reading it first is safe.
    const generation = Atomics.load(this.ctrl, GENERATION);
    Atomics.store(this.ctrl, BARRIER_INTS + rank, generation + 1);
    if (Atomics.add(this.ctrl, COUNT, 1) === this.parties - 1) {
      Atomics.store(this.ctrl, COUNT, 0);
      Atomics.add(this.ctrl, GENERATION, 1);
      Atomics.notify(this.ctrl, GENERATION);
      return;
    }
    const deadline = Date.now() + this.stallMs;
    while (Atomics.load(this.ctrl, GENERATION) === generation) {
      // A timeout as well as the notify: the abort flag is re-read at least once a second.
      const left = deadline - Date.now();
      if (left <= 0) this.stalled(generation);
      Atomics.wait(this.ctrl, GENERATION, generation, Math.min(1000, left));
      if (this.aborted) throw new ReplicaAbortedError('another replica failed');
    }
    if (this.aborted) throw new ReplicaAbortedError('another replica failed');
  }

  private stalled(generation: number): never {
    const late: number[] = [];
    for (let r = 0; r < this.parties; r++) if (Atomics.load(this.ctrl, BARRIER_INTS + r) !== generation + 1) late.push(r);
    this.abort();
    throw new ReplicaStalledError(
      `replica ${late.join(', ')} stalled: no progress for ${this.stallMs / 1000} s while the others waited for it`,
    );
  }
}
