/**
 * Data-parallel training on one machine: the batch is split between replicas in worker threads,
 * each with its own OpenMP threads, and their gradients are combined through shared memory
 * (replica.ts). On the 2-core development machine two one-thread replicas train faster than one
 * two-thread process: oneDNN's kernels on small shapes gain little from a second thread.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { OptionError, XceptionError } from '../../core/errors.js';
import type { Batch } from '../../data/loader.js';
import type { Model } from '../../nn/model.js';
import type { ExponentialMovingAverage } from '../ema.js';
import { type Optimizer, type OptimizerOptions, TrainingDivergedError } from '../optimizers.js';
import { DEFAULT_STALL_MS, ReplicaAbortedError, ReplicaStalledError, SharedBarrier } from './barrier.js';
import type { TrainPrecision } from '../precision.js';
import type { PullReply, ReplicaCommand, ReplicaInit, ReplicaReply, SharedLayout, StepReply } from './protocol.js';

export class ReplicaError extends XceptionError {}

export interface DataParallelOptions {
  /** Replicas (worker threads). */
  replicas: number;
  /** OpenMP threads per replica (default: the machine's cores ÷ replicas, at least 1). */
  threadsPerReplica?: number;
  model: string;
  modelOptions: Record<string, unknown>;
  optimizer: { name: Optimizer['name']; options: OptimizerOptions };
  labelSmoothing: number;
  /** Multi-label training: sigmoid cross-entropy against the batches' multi-hot targets. */
  multiLabel?: boolean;
  ema: number;
  /** Convolution precision of the replicas (default fp32; see train/precision.ts). */
  precision?: TrainPrecision;
  /** Called as each replica reports ready (building a large model takes seconds per replica). */
  onReplicaReady?: (ready: number, replicas: number) => void;
  /**
   * A replica that keeps the others waiting this long ends the run with ReplicaError (default:
   * XCEPTION_REPLICA_STALL_MS from the environment, else 60 s).
   */
  stallMs?: number;
  /** Tests only: replica `rank` blocks for `ms` at the start of every step. */
  injectStall?: { rank: number; ms: number };
}

/** The stall timeout of a run: the option, else XCEPTION_REPLICA_STALL_MS, else 60 s. */
export function stallTimeoutMs(option?: number): number {
  const fromEnv = process.env.XCEPTION_REPLICA_STALL_MS;
  const ms = option ?? (fromEnv === undefined ? DEFAULT_STALL_MS : Number(fromEnv));
  if (!(Number.isFinite(ms) && ms > 0))
    throw new OptionError(`the replica stall timeout must be a positive number of milliseconds, got ${option ?? fromEnv}`);
  return ms;
}

type Pending = { resolve: (r: ReplicaReply) => void };

/** The default thread split: every core busy, none shared. */
export function defaultThreadsPerReplica(replicas: number): number {
  return Math.max(1, Math.floor(availableParallelism() / replicas));
}

/** The replies' results, or one ReplicaError naming the first real failure (not a peer's abort). */
function resultsOf<T>(replies: ReplicaReply[]): T[] {
  const errors = replies.filter((r): r is Extract<ReplicaReply, { ok: false }> => !r.ok);
  if (errors.length > 0) {
    const first = errors.find((e) => e.error.name !== ReplicaAbortedError.name) ?? errors[0]!;
    throw new ReplicaError(`data-parallel training failed: ${first.error.message}`);
  }
  return replies.map((r) => (r as Extract<ReplicaReply, { ok: true }>).result as T);
}

export class DataParallel {
  private nextId = 1;
  private readonly pending: Map<number, Pending>[];
  private failure: Error | null = null;
  private closed = false;

  private constructor(
    private readonly workers: Worker[],
    private readonly barrier: SharedBarrier,
    readonly threadsPerReplica: number,
  ) {
    this.pending = workers.map(() => new Map());
  }

  get replicas(): number {
    return this.workers.length;
  }

  /**
   * Starts the replicas from the main thread's model, optimizer and weight average (the same
   * values everywhere: a resumed run continues exactly).
   */
  static async start(
    o: DataParallelOptions,
    from: { model: Model; optimizer: Optimizer; ema: ExponentialMovingAverage | null },
  ): Promise<DataParallel> {
    if (!(Number.isInteger(o.replicas) && o.replicas >= 2))
      throw new ReplicaError(`data-parallel training needs at least 2 replicas, got ${o.replicas}`);
    const threads = o.threadsPerReplica ?? defaultThreadsPerReplica(o.replicas);
    const stallMs = stallTimeoutMs(o.stallMs);
    // The replicas compute on the backend the main thread's model lives on (by its registry name).
    const onBackend = from.model.weights[0]?.value.backend.name;
    const backend = onBackend === 'native' || onBackend === 'wasm' ? onBackend : 'reference';
    const weights: Record<string, Float32Array> = {};
    for (const v of from.model.weights) weights[v.name] = v.value.data();
    const gradFloats = from.model.weights.filter((v) => v.trainable).reduce((a, v) => a + v.size, 0);
    const stateFloats = from.model.weights.filter((v) => !v.trainable).reduce((a, v) => a + v.size, 0);
    const shared: SharedLayout = {
      barrier: SharedBarrier.memory(o.replicas),
      grads: new SharedArrayBuffer(Math.max(1, o.replicas * gradFloats) * 4),
      state: new SharedArrayBuffer(Math.max(1, o.replicas * stateFloats) * 4),
      losses: new SharedArrayBuffer(o.replicas * 8),
    };
    const optimizerState = from.optimizer.step > 0 ? from.optimizer.getState() : null;
    const emaFull = from.ema && from.ema.updates > 0 ? from.ema.getState() : null;
    const emaState = emaFull ? { updates: emaFull.updates, shadow: emaFull.shadow } : null;
    const workers: Worker[] = [];
    const ready: Promise<ReplicaReply>[] = [];
    let readyCount = 0;
    for (let rank = 0; rank < o.replicas; rank++) {
      const init: ReplicaInit = {
        rank,
        world: o.replicas,
        threads,
        backend,
        model: o.model,
        modelOptions: o.modelOptions,
        optimizer: o.optimizer,
        labelSmoothing: o.labelSmoothing,
        multiLabel: o.multiLabel ?? false,
        ema: o.ema,
        precision: o.precision ?? 'fp32',
        weights,
        optimizerState,
        emaState,
        shared,
        stallMs,
        ...(o.injectStall ? { injectStall: o.injectStall } : {}),
      };
      const w = new Worker(new URL('./replica.js', import.meta.url), { workerData: { replica: init } });
      workers.push(w);
      ready.push(
        new Promise((resolve) => {
          const onMessage = (m: ReplicaReply) => {
            if (m.id !== 0) return;
            w.off('message', onMessage);
            if (m.ok) o.onReplicaReady?.(++readyCount, o.replicas);
            resolve(m);
          };
          w.on('message', onMessage);
          w.once('error', (e) => resolve({ id: 0, ok: false, error: { name: e.name, message: e.message } }));
          w.once('exit', (code) =>
            resolve({
              id: 0,
              ok: false,
              error: { name: 'Error', message: `replica ${rank} exited with code ${code}` },
            }),
          );
        }),
      );
    }
    const dp = new DataParallel(workers, new SharedBarrier(shared.barrier, o.replicas, stallMs), threads);
    const started = await Promise.all(ready);
    const bad = started.find((r) => !r.ok);
    if (bad && !bad.ok) {
      await dp.close();
      throw new ReplicaError(`a training replica failed to start: ${bad.error.message}`);
    }
    workers.forEach((w, rank) => dp.listen(w, rank));
    return dp;
  }

  private listen(w: Worker, rank: number): void {
    w.on('message', (m: ReplicaReply) => {
      const p = this.pending[rank]!.get(m.id);
      if (!p) return;
      this.pending[rank]!.delete(m.id);
      p.resolve(m);
      // A stalled replica may never answer: fail the run now rather than wait for its reply.
      if (!m.ok && m.error.name === ReplicaStalledError.name) this.failAll(`data-parallel training failed: ${m.error.message}`);
    });
    w.on('error', (e) => this.failAll(`training replica ${rank} failed: ${e.message}`));
    w.on('exit', (code) => this.failAll(`training replica ${rank} exited (code ${code})`));
  }

  /** Records the run's failure and answers every pending request with it. */
  private failAll(message: string): void {
    if (this.closed) return;
    this.failure ??= new ReplicaError(message);
    this.barrier.abort(); // the others may wait for the failed one at the barrier
    for (const pending of this.pending) {
      for (const [id, p] of pending) p.resolve({ id, ok: false, error: { name: 'ReplicaError', message: this.failure.message } });
      pending.clear();
    }
  }

  private request(rank: number, req: ReplicaCommand, transfer: ArrayBuffer[] = []): Promise<ReplicaReply> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new ReplicaError('the replicas were closed'));
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending[rank]!.set(id, { resolve });
      this.workers[rank]!.postMessage({ ...req, id }, transfer);
    });
  }

  /** Runs requests on every replica; the first real failure is thrown. */
  private async all<T>(reqs: Array<[ReplicaCommand, ArrayBuffer[]]>): Promise<T[]> {
    const replies = await Promise.all(reqs.map(([r, t], rank) => this.request(rank, r, t)));
    return resultsOf<T>(replies);
  }

  /** Shard sizes for a batch of n rows: as equal as possible, the larger shards first. */
  shardSizes(n: number): number[] {
    const k = this.workers.length;
    return Array.from({ length: k }, (_, r) => Math.floor(n / k) + (r < n % k ? 1 : 0));
  }

  /**
   * One optimizer step on the whole batch (multi-hot targets, when it has them, split like its
   * rows); `statisticsStep` warms batch norm up (ForwardOptions). Returns the batch's mean loss and top-1 count;
   * `applied` is false (and no weight changed) when some shard's loss was not finite. A
   * non-finite summed gradient throws TrainingDivergedError, no weight changed anywhere.
   */
  async step(
    batch: Batch,
    lr: number,
    seed: number,
    statisticsStep?: number,
  ): Promise<{ loss: number; correct: number; applied: boolean }> {
    const sizes = this.shardSizes(batch.size);
    const [, h, w, c] = batch.shape;
    const pixels = h * w * c;
    const classes = batch.targets ? batch.targets.length / batch.size : 0;
    let row = 0;
    const reqs = sizes.map((n): [ReplicaCommand, ArrayBuffer[]] => {
      const x = batch.x.slice(row * pixels, (row + n) * pixels);
      const y = batch.y.slice(row, row + n);
      const targets = batch.targets?.slice(row * classes, (row + n) * classes);
      row += n;
      const step: ReplicaCommand = {
        kind: 'step',
        x,
        y,
        shape: [n, h, w, c],
        lr,
        shardSizes: sizes,
        seed,
        statisticsStep,
        ...(targets ? { targets } : {}),
      };
      return [step, targets ? [x.buffer, y.buffer, targets.buffer] : [x.buffer, y.buffer]];
    });
    const replies = await this.all<StepReply>(reqs);
    const diverged = replies.find((r) => r.diverged !== undefined)?.diverged;
    if (diverged !== undefined) throw new TrainingDivergedError(diverged);
    let loss = 0;
    let correct = 0;
    replies.forEach((r, i) => {
      if (sizes[i]! > 0) loss += (sizes[i]! / batch.size) * r.loss;
      correct += r.correct;
    });
    const applied = replies.every((r) => r.applied);
    return { loss: applied ? loss : NaN, correct, applied };
  }

  /**
   * Copies a replica's weights (and optimizer state, weight average) into the main thread's.
   * Every replica holds the same values; replica 0 is asked unless `rank` says otherwise.
   */
  async pullInto(
    to: { model: Model; optimizer: Optimizer; ema: ExponentialMovingAverage | null },
    withOptimizer: boolean,
    rank = 0,
  ): Promise<void> {
    if (!(Number.isInteger(rank) && rank >= 0 && rank < this.workers.length)) throw new ReplicaError(`no replica ${rank}`);
    const [s] = resultsOf<PullReply>([await this.request(rank, { kind: 'pull', optimizer: withOptimizer })]);
    for (const v of to.model.weights) v.setData(s.weights[v.name]!);
    if (withOptimizer && s.optimizerState) to.optimizer.setState(s.optimizerState, to.model.weights);
    if (to.ema && s.emaState) to.ema.setState(s.emaState, to.model.weights);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.barrier.abort();
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
