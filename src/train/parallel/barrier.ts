/**
 * A reusable barrier for the replicas of a data-parallel run, on a SharedArrayBuffer so that
 * worker threads meet without a round trip through the main thread. Any party (or the main
 * thread, when a worker dies) can abort it: every waiter then throws instead of waiting forever.
 */
import { XceptionError } from '../../core/errors.js';

const COUNT = 0;
const GENERATION = 1;
const ABORTED = 2;
export const BARRIER_INTS = 3;

export class ReplicaAbortedError extends XceptionError {}

export class SharedBarrier {
  private readonly ctrl: Int32Array;

  /** `memory` holds BARRIER_INTS int32s, zeroed when the run starts; `parties` threads meet. */
  constructor(
    memory: SharedArrayBuffer,
    readonly parties: number,
  ) {
    this.ctrl = new Int32Array(memory, 0, BARRIER_INTS);
  }

  static memory(): SharedArrayBuffer {
    return new SharedArrayBuffer(BARRIER_INTS * Int32Array.BYTES_PER_ELEMENT);
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

  /** Blocks until all parties have arrived (Atomics.wait: worker threads only). */
  arrive(): void {
    if (this.aborted) throw new ReplicaAbortedError('another replica failed');
    // The generation cannot move on before this party has arrived, so reading it first is safe.
    const generation = Atomics.load(this.ctrl, GENERATION);
    if (Atomics.add(this.ctrl, COUNT, 1) === this.parties - 1) {
      Atomics.store(this.ctrl, COUNT, 0);
      Atomics.add(this.ctrl, GENERATION, 1);
      Atomics.notify(this.ctrl, GENERATION);
      return;
    }
    while (Atomics.load(this.ctrl, GENERATION) === generation) {
      // A timeout as well as the notify: the abort flag is re-read at least once a second.
      Atomics.wait(this.ctrl, GENERATION, generation, 1000);
      if (this.aborted) throw new ReplicaAbortedError('another replica failed');
    }
    if (this.aborted) throw new ReplicaAbortedError('another replica failed');
  }
}
