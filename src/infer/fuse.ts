/**
 * Fusions on an inference graph (graph.ts), each only where it cannot change the result:
 *   - a batch norm whose input is a convolution used by nothing else, without post-ops, is folded
 *     into that convolution's weights and bias (an `affine` recipe);
 *   - an Add of two inputs, one of them such a convolution, becomes the convolution's sum post-op
 *     when the Add is the other input's last reader (the convolution then writes into it, and runs
 *     where the Add was);
 *   - a ReLU/ELU whose input is a convolution or dense node used by nothing else becomes its
 *     eltwise post-op.
 * A fused node leaves the graph; its readers read the node it fused into.
 */
import { bnAffine, readersOf, type ConvNode, type GraphNode, type InferenceGraph } from './graph.js';

export interface FuseOptions {
  batchNorm?: boolean;
  sum?: boolean;
  eltwise?: boolean;
}

/** Counts of what was fused, for reports and tests. */
export interface FusionCounts {
  foldedBatchNorms: number;
  sumPostOps: number;
  eltwisePostOps: number;
  /** Batch norms left as their own nodes. */
  standaloneBatchNorms: number;
}

/** Removes `from` from the graph: its readers (and the output) now read `to`. */
function replaceNode(g: InferenceGraph, from: GraphNode, to: GraphNode): void {
  g.nodes.splice(g.nodes.indexOf(from), 1);
  for (const n of g.nodes) {
    n.inputs = n.inputs.map((i) => (i === from ? to : i));
    if (n.op === 'conv' && n.sumInto === from) n.sumInto = to;
  }
  if (g.output === from) g.output = to;
  to.layers.push(...from.layers);
}

/** A convolution that may take over what a node after it computes: no post-ops yet, one reader, not the output. */
function soleConv(g: InferenceGraph, n: GraphNode, readers: Map<GraphNode, GraphNode[]>): n is ConvNode {
  return n.op === 'conv' && n.posts.length === 0 && n !== g.output && (readers.get(n)?.length ?? 0) === 1;
}

function foldBatchNorms(g: InferenceGraph): number {
  let count = 0;
  for (const n of [...g.nodes]) {
    if (n.op !== 'bn') continue;
    const c = n.inputs[0]!;
    if (!soleConv(g, c, readersOf(g.nodes))) continue;
    c.affine.push(() => bnAffine(n));
    replaceNode(g, n, c);
    count++;
  }
  return count;
}

/** Whether conv `a` may add into `b` for Add `add`: b is an intermediate no later step reads, and not a's input. */
function canSumInto(g: InferenceGraph, add: GraphNode, a: GraphNode, b: GraphNode, readers: Map<GraphNode, GraphNode[]>): a is ConvNode {
  if (!soleConv(g, a, readers) || a === b) return false;
  if (b.op === 'input' || b === g.output || a.inputs[0] === b) return false;
  const bReaders = readers.get(b) ?? [];
  if (bReaders.filter((x) => x === add).length !== 1) return false;
  const at = g.nodes.indexOf(add);
  return !bReaders.some((x) => x !== add && g.nodes.indexOf(x) > at);
}

function fuseSums(g: InferenceGraph): number {
  let count = 0;
  for (const n of [...g.nodes]) {
    if (n.op !== 'add' || n.inputs.length !== 2) continue;
    const readers = readersOf(g.nodes);
    for (const k of [0, 1]) {
      const a = n.inputs[k]!;
      const b = n.inputs[1 - k]!;
      if (!canSumInto(g, n, a, b, readers)) continue;
      a.posts.push({ kind: 'sum' });
      a.sumInto = b;
      // The convolution now runs where the add was.
      g.nodes.splice(g.nodes.indexOf(a), 1);
      g.nodes.splice(g.nodes.indexOf(n), 0, a);
      replaceNode(g, n, a);
      count++;
      break;
    }
  }
  return count;
}

function fuseEltwise(g: InferenceGraph): number {
  let count = 0;
  for (const n of [...g.nodes]) {
    if (n.op !== 'eltwise') continue;
    const c = n.inputs[0]!;
    if ((c.op !== 'conv' && c.op !== 'dense') || c === g.output || (readersOf(g.nodes).get(c)?.length ?? 0) !== 1) continue;
    if (c.posts.some((p) => p.kind === 'eltwise')) continue;
    c.posts.push({ kind: 'eltwise', alg: n.alg, alpha: n.alpha });
    replaceNode(g, n, c);
    count++;
  }
  return count;
}

/** Applies the fusions `fuse` asks for (default all), in place, batch norms first. */
export function fuseGraph(g: InferenceGraph, fuse: FuseOptions = {}): FusionCounts {
  const foldedBatchNorms = (fuse.batchNorm ?? true) ? foldBatchNorms(g) : 0;
  const sumPostOps = (fuse.sum ?? true) ? fuseSums(g) : 0;
  const eltwisePostOps = (fuse.eltwise ?? true) ? fuseEltwise(g) : 0;
  const standaloneBatchNorms = g.nodes.filter((n) => n.op === 'bn').length;
  return { foldedBatchNorms, sumPostOps, eltwisePostOps, standaloneBatchNorms };
}
