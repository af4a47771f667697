/**
 * One replica of a data-parallel run, in a worker thread: its own model, optimizer and OpenMP
 * threads. Each step it trains on its shard of the batch, then all replicas meet on shared memory:
 *   1. losses — if any replica's loss is not finite, nobody updates (the trainer stops the run);
 *      nor does anybody when the summed gradient is not finite (the optimizer refuses it); either
 *      way the moving statistics go back to their values before the step, equal everywhere;
 *   2. gradients — every replica sums all shards' gradients, weighted by shard size, in the same
 *      order, and applies the same optimizer update: the weights stay bit-identical everywhere;
 *   3. batch-norm moving statistics — averaged the same way (each replica normalizes with its own
 *      shard's statistics during the step, like a batch of that size).
 */
import { parentPort, workerData } from 'node:worker_threads';
import '../../backends/index.js';
import { backward } from '../../core/autograd.js';
import { tensor } from '../../core/creation.js';
import { Random } from '../../core/random.js';
import { getBackend, keep, setBackend, tidy } from '../../core/engine.js';
import type { Batch } from '../../data/loader.js';
import { buildModel } from '../../models/registry.js';
import type { Variable } from '../../nn/layer.js';
import { ExponentialMovingAverage } from '../ema.js';
import { correctAtOne, trainingLoss } from '../multilabel.js';
import { clearGrad, Optimizer, TrainingDivergedError } from '../optimizers.js';
import { useTrainPrecision } from '../precision.js';
import { SharedBarrier } from './barrier.js';
import type { PullReply, ReplicaInit, ReplicaReply, ReplicaRequest, StepReply } from './protocol.js';

interface ThreadedBackend {
  setThreads?(n: number): void;
}

/** Float offsets of each variable in a flat shared slot. */
function offsets(vars: readonly Variable[]): { offsets: number[]; total: number } {
  const out: number[] = [];
  let total = 0;
  for (const v of vars) {
    out.push(total);
    total += v.size;
  }
  return { offsets: out, total };
}

/** Blocks this thread, as a replica stuck in a kernel would (tests' injected stall). */
function blockFor(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export class Replica {
  private readonly model;
  private readonly optimizer: Optimizer;
  private readonly ema: ExponentialMovingAverage | null;
  private readonly barrier: SharedBarrier;
  private readonly trainable: Variable[];
  private readonly state: Variable[];
  private readonly gradSlots: Float32Array[];
  private readonly stateSlots: Float32Array[];
  private readonly gradOffsets: number[];
  private readonly stateOffsets: number[];
  private readonly losses: Float64Array;
  private readonly classes: number;
  /**
   * Which trainable weights receive a gradient (structural: the same every step). Learned from
   * this replica's last non-empty shard, so that a replica with an empty shard still updates
   * exactly the weights the others update.
   */
  private readonly hasGrad: boolean[];

  constructor(private readonly init: ReplicaInit) {
    if (init.backend) setBackend(init.backend);
    const backend = getBackend();
    (backend as ThreadedBackend).setThreads?.(init.threads);
    // The worker's backend is its own; it lives as long as the worker, so nothing to restore.
    useTrainPrecision(backend, init.precision);
    this.model = buildModel(init.model, { ...init.modelOptions, backend });
    this.classes = this.model.outputShape[0]!;
    for (const v of this.model.weights) {
      const w = init.weights[v.name];
      if (!w) throw new Error(`replica ${init.rank}: no initial value for weight '${v.name}'`);
      v.setData(w);
    }
    this.optimizer = new Optimizer(init.optimizer.name, init.optimizer.options);
    if (init.optimizerState) this.optimizer.setState(init.optimizerState, this.model.weights);
    this.ema = init.rank === 0 && init.ema > 0 ? new ExponentialMovingAverage(init.ema) : null;
    if (this.ema && init.emaState) this.ema.setState(init.emaState, this.model.weights);
    this.barrier = new SharedBarrier(init.shared.barrier, init.world, init.stallMs);
    this.trainable = this.model.weights.filter((v) => v.trainable);
    this.state = this.model.weights.filter((v) => !v.trainable);
    const g = offsets(this.trainable);
    const s = offsets(this.state);
    this.gradOffsets = g.offsets;
    this.stateOffsets = s.offsets;
    this.gradSlots = Array.from({ length: init.world }, (_, r) => new Float32Array(init.shared.grads, r * g.total * 4, g.total));
    this.stateSlots = Array.from({ length: init.world }, (_, r) => new Float32Array(init.shared.state, r * s.total * 4, s.total));
    this.losses = new Float64Array(init.shared.losses, 0, init.world);
    this.hasGrad = this.trainable.map(() => true);
    if (this.gradSlots[0]!.length !== g.total || this.stateSlots[0]!.length !== s.total) throw new Error('shared memory layout mismatch');
  }

  step(req: Extract<ReplicaRequest, { kind: 'step' }>): StepReply {
    const { rank } = this.init;
    const rows = req.shape[0];
    const total = req.shardSizes.reduce((a, b) => a + b, 0);
    const shares = req.shardSizes.map((n) => n / total);
    let loss = NaN;
    if (this.init.injectStall?.rank === rank) blockFor(this.init.injectStall.ms);
    let correct = 0;
    const statistics = this.state.map((v) => v.value.data());
    const restoreStatistics = () => this.state.forEach((v, i) => v.setData(statistics[i]!));
    if (rows > 0) {
      loss = tidy(() => {
        const x = tensor(req.x, req.shape, { backend: getBackend() });
        // Dropout masks from the step's seed: the main thread's generator stays the run's only
        // random state (a resumed run repeats exactly), and the replicas draw different masks.
        const rng = new Random((req.seed + rank * 0x9e3779b9) >>> 0);
        const out = this.model.forward(x, { training: true, logits: true, rng, statisticsStep: req.statisticsStep });
        const shard: Batch = { x: req.x, y: req.y, size: rows, shape: req.shape, ...(req.targets ? { targets: req.targets } : {}) };
        const choice = { multiLabel: this.init.multiLabel, labelSmoothing: this.init.labelSmoothing, classes: this.classes };
        const l = trainingLoss(out, shard, choice);
        const value = l.item();
        correct = correctAtOne(out.data(), shard, choice);
        // 1. Every replica learns whether all losses are finite before anyone goes backward.
        this.losses[rank] = value;
        this.barrier.arrive(rank);
        if (this.allFinite(req.shardSizes)) backward(l, { release: true });
        return value;
      });
    } else {
      this.losses[rank] = 0;
      this.barrier.arrive(rank);
    }
    if (!this.allFinite(req.shardSizes)) {
      for (const v of this.model.weights) clearGrad(v);
      restoreStatistics();
      return { loss, correct, applied: false };
    }
    // 2. Gradients: publish this shard's, then every replica forms the same weighted sum.
    const mine = this.gradSlots[rank]!;
    this.trainable.forEach((v, i) => {
      const g = v.value.grad;
      if (rows > 0) this.hasGrad[i] = g !== null;
      if (g) mine.set(g.data(), this.gradOffsets[i]);
      else mine.fill(0, this.gradOffsets[i], this.gradOffsets[i]! + v.size);
    });
    this.barrier.arrive(rank);
    this.trainable.forEach((v, i) => {
      if (!this.hasGrad[i]) return; // not used by the model: the optimizer skips it
      const sum = this.weightedSum(this.gradSlots, shares, this.gradOffsets[i]!, v.size);
      clearGrad(v);
      v.value.grad = keep(tensor(sum, v.shape, { backend: v.value.backend }));
    });
    this.optimizer.lr = req.lr;
    try {
      this.optimizer.apply(this.model.weights);
    } catch (e) {
      // Every replica holds the same summed gradients, so every one refuses them here.
      if (!(e instanceof TrainingDivergedError)) throw e;
      restoreStatistics();
      return { loss, correct, applied: false, diverged: e.message };
    }
    this.ema?.update(this.trainable);
    this.averageState(rank, shares);
    return { loss, correct, applied: true };
  }

  /** 3. Moving statistics: the shards' updates, averaged the same way. */
  private averageState(rank: number, shares: number[]): void {
    if (this.state.length === 0) return;
    const mine = this.stateSlots[rank]!;
    this.state.forEach((v, i) => mine.set(v.value.data(), this.stateOffsets[i]));
    this.barrier.arrive(rank);
    this.state.forEach((v, i) => v.setData(this.weightedSum(this.stateSlots, shares, this.stateOffsets[i]!, v.size)));
  }

  private allFinite(shardSizes: number[]): boolean {
    for (let r = 0; r < this.init.world; r++) if (shardSizes[r]! > 0 && !Number.isFinite(this.losses[r]!)) return false;
    return true;
  }

  /** Σ_r share_r · slot_r[offset … offset+size), in rank order (the same rounding everywhere). */
  private weightedSum(slots: Float32Array[], shares: number[], offset: number, size: number): Float32Array {
    const out = new Float32Array(size);
    for (let j = 0; j < size; j++) {
      let s = 0;
      for (let r = 0; r < slots.length; r++) if (shares[r]! > 0) s += shares[r]! * slots[r]![offset + j]!;
      out[j] = s;
    }
    return out;
  }

  pull(withOptimizer: boolean): PullReply {
    const weights: Record<string, Float32Array> = {};
    for (const v of this.model.weights) weights[v.name] = v.value.data();
    const ema = this.ema ? this.ema.getState() : null;
    return {
      weights,
      optimizerState: withOptimizer ? this.optimizer.getState() : null,
      emaState: ema ? { updates: ema.updates, shadow: ema.shadow } : null,
    };
  }

  dispose(): void {
    this.optimizer.disposeSlots();
    this.ema?.dispose();
    this.model.dispose();
  }
}

// ---- the worker thread's message loop ----
if (parentPort && workerData && (workerData as { replica?: ReplicaInit }).replica) {
  const port = parentPort;
  const init = (workerData as { replica: ReplicaInit }).replica;
  // Aborted when this replica fails, so that the others waiting for it at the barrier are released.
  const barrier = new SharedBarrier(init.shared.barrier, init.world, init.stallMs);
  let replica: Replica | null = null;
  let failure: { name: string; message: string } | null = null;
  try {
    replica = new Replica(init);
  } catch (e) {
    failure = { name: e instanceof Error ? e.name : 'Error', message: e instanceof Error ? e.message : String(e) };
    barrier.abort();
  }
  port.on('message', (req: ReplicaRequest) => {
    let reply: ReplicaReply;
    try {
      if (!replica) throw Object.assign(new Error(failure!.message), { name: failure!.name });
      const result = req.kind === 'step' ? replica.step(req) : replica.pull(req.optimizer);
      reply = { id: req.id, ok: true, result };
    } catch (e) {
      barrier.abort();
      reply = {
        id: req.id,
        ok: false,
        error: { name: e instanceof Error ? e.name : 'Error', message: e instanceof Error ? e.message : String(e) },
      };
    }
    port.postMessage(reply);
  });
  const ready: ReplicaReply = failure ? { id: 0, ok: false, error: failure } : { id: 0, ok: true, result: null };
  port.postMessage(ready);
}
