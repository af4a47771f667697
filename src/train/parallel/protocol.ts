/** Messages between the data-parallel trainer (main thread) and its replicas (worker threads). */
import type { OptimizerName, OptimizerOptions, OptimizerState } from '../optimizers.js';
import type { TrainPrecision } from '../precision.js';

/** Shared memory of a run: laid out once by the main thread, read by every replica. */
export interface SharedLayout {
  barrier: SharedArrayBuffer;
  /** world × gradient floats: each replica's gradients of the trainable weights, in order. */
  grads: SharedArrayBuffer;
  /** world × state floats: each replica's non-trainable weights (batch-norm moving statistics). */
  state: SharedArrayBuffer;
  /** world float64s: each replica's loss of the current step. */
  losses: SharedArrayBuffer;
}

export interface ReplicaInit {
  rank: number;
  world: number;
  /** OpenMP threads this replica's kernels use. */
  threads: number;
  /** 'native' | 'reference'; undefined = the default choice. */
  backend?: string;
  model: string;
  modelOptions: Record<string, unknown>;
  optimizer: { name: OptimizerName; options: OptimizerOptions };
  labelSmoothing: number;
  /** Convolution precision (train/precision.ts); each replica's backend is its own. */
  precision: TrainPrecision;
  /** Sigmoid cross-entropy against the steps' multi-hot targets instead of softmax cross-entropy. */
  multiLabel: boolean;
  /** EMA decay (0 = none); only replica 0 keeps the average. */
  ema: number;
  /** Start from these: every weight by name, the optimizer's and the average's state. */
  weights: Record<string, Float32Array>;
  optimizerState: OptimizerState | null;
  emaState: { updates: number; shadow: Record<string, Float32Array> } | null;
  shared: SharedLayout;
  /** A replica that waits this long at a barrier for the others ends the run (ReplicaStalledError). */
  stallMs: number;
  /** Tests only: this replica blocks for `ms` at the start of every step. */
  injectStall?: { rank: number; ms: number };
}

export type ReplicaCommand =
  | {
      kind: 'step';
      x: Float32Array;
      y: Int32Array;
      /** Multi-label data: the shard's rows × classes multi-hot targets. */
      targets?: Float32Array;
      shape: [number, number, number, number];
      lr: number;
      shardSizes: number[];
      /** Seeds this step's dropout; each replica derives its own stream from it and its rank. */
      seed: number;
      /** Warms batch norm's statistics up (ForwardOptions.statisticsStep). */
      statisticsStep?: number;
    }
  | { kind: 'pull'; optimizer: boolean };

export type ReplicaRequest = ReplicaCommand & { id: number };

export interface StepReply {
  /** This replica's mean loss over its shard (NaN when the shard was empty). */
  loss: number;
  /** Top-1 correct in its shard (multi-label: highest-scored class is one of the image's). */
  correct: number;
  /** False when some replica's loss was not finite: no update was applied anywhere. */
  applied: boolean;
  /** Set when the summed gradient was not finite: the optimizer's refusal (nothing applied anywhere). */
  diverged?: string;
}

export interface PullReply {
  weights: Record<string, Float32Array>;
  optimizerState: OptimizerState | null;
  emaState: { updates: number; shadow: Record<string, Float32Array> } | null;
}

export type ReplicaReply =
  | { id: number; ok: true; result: StepReply | PullReply | null }
  | { id: number; ok: false; error: { name: string; message: string } };
