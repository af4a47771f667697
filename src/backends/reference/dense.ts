/** Matrix product and the row/channel bookkeeping kernels, all on row-major matrices. */
import type { Handle, MatMulParams, NumArray, RowsParams } from '../../core/backend.js';
import { asArray, check, checkNonNegativeInts, checkPositiveInts, fromAccumulator, newLike } from './arrays.js';

/**
 * c[m, n] = op(a)·op(b), op(a) = a [m, k] or aᵀ with a stored [k, m] (transA);
 * op(b) = b [k, n] or bᵀ with b stored [n, k] (transB).
 */
export function matmul(ah: Handle, bh: Handle, p: MatMulParams): NumArray {
  checkPositiveInts(p, ['m', 'k', 'n'], 'matmul');
  check(typeof p.transA === 'boolean' && typeof p.transB === 'boolean', 'matmul: transA and transB must be booleans');
  const { m, k, n, transA, transB } = p;
  const a = asArray(ah, m * k, 'matmul a');
  const b = asArray(bh, k * n, 'matmul b');
  // op(a)[i, q] lives at a[i·k + q], or at a[q·m + i] when transposed.
  const aRowStride = transA ? 1 : k;
  const aColStride = transA ? m : 1;
  const acc = new Float64Array(m * n);
  if (!transB) {
    // Row i of c accumulates a[i, q] · (row q of b): the inner loop runs along contiguous rows.
    for (let i = 0; i < m; i++) {
      const cRow = i * n;
      for (let q = 0; q < k; q++) {
        const av = a[i * aRowStride + q * aColStride];
        const bRow = q * n;
        for (let j = 0; j < n; j++) acc[cRow + j] += av * b[bRow + j];
      }
    }
  } else {
    // b stored [n, k]: c[i, j] is the dot product of op(a) row i with the contiguous row j of b.
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        const bRow = j * k;
        for (let q = 0; q < k; q++) s += a[i * aRowStride + q * aColStride] * b[bRow + q];
        acc[i * n + j] = s;
      }
    }
  }
  return fromAccumulator(a, acc);
}

/** x[rows, channels] + bias[channels] on every row. */
export function biasAdd(xh: Handle, biash: Handle, p: RowsParams): NumArray {
  checkPositiveInts(p, ['rows', 'channels'], 'biasAdd');
  const { rows, channels: C } = p;
  const x = asArray(xh, rows * C, 'biasAdd input');
  const bias = asArray(biash, C, 'biasAdd bias');
  const y = newLike(x, rows * C);
  for (let r = 0; r < rows; r++) {
    const base = r * C;
    for (let c = 0; c < C; c++) y[base + c] = x[base + c] + bias[c];
  }
  return y;
}

/** Σ over rows: [rows, channels] → [channels]. */
export function sumRows(xh: Handle, p: RowsParams): NumArray {
  checkPositiveInts(p, ['rows', 'channels'], 'sumRows');
  const { rows, channels: C } = p;
  const x = asArray(xh, rows * C, 'sumRows input');
  const acc = new Float64Array(C);
  for (let r = 0; r < rows; r++) {
    const base = r * C;
    for (let c = 0; c < C; c++) acc[c] += x[base + c];
  }
  return fromAccumulator(x, acc);
}

/** Inputs [rows, channels[i]] side by side → [rows, Σ channels]; dtype of the first input. */
export function concatChannels(xhs: readonly Handle[], rows: number, channels: readonly number[]): NumArray {
  check(Array.isArray(xhs) && Array.isArray(channels), 'concatChannels: inputs and channels must be arrays');
  check(xhs.length > 0, 'concatChannels: needs at least one input');
  check(xhs.length === channels.length, `concatChannels: ${xhs.length} inputs but ${channels.length} channel counts`);
  checkPositiveInts({ rows }, ['rows'], 'concatChannels');
  channels.forEach((c, i) => checkPositiveInts({ [`channels[${i}]`]: c }, [`channels[${i}]`], 'concatChannels'));
  const xs = xhs.map((h, i) => asArray(h, rows * channels[i], `concatChannels input ${i}`));
  const total = channels.reduce((s, c) => s + c, 0);
  const y = newLike(xs[0], rows * total);
  let offset = 0;
  xs.forEach((x, i) => {
    const C = channels[i];
    for (let r = 0; r < rows; r++) {
      const src = r * C,
        dst = r * total + offset;
      for (let c = 0; c < C; c++) y[dst + c] = x[src + c];
    }
    offset += C;
  });
  return y;
}

/** Columns [start, start + count) of x[rows, channels] → [rows, count]. */
export function sliceChannels(xh: Handle, p: RowsParams, start: number, count: number): NumArray {
  checkPositiveInts(p, ['rows', 'channels'], 'sliceChannels');
  checkNonNegativeInts({ start }, ['start'], 'sliceChannels');
  checkPositiveInts({ count }, ['count'], 'sliceChannels');
  check(start + count <= p.channels, `sliceChannels: columns ${start}…${start + count - 1} exceed ${p.channels} channels`);
  const { rows, channels: C } = p;
  const x = asArray(xh, rows * C, 'sliceChannels input');
  const y = newLike(x, rows * count);
  for (let r = 0; r < rows; r++) {
    const src = r * C + start,
      dst = r * count;
    for (let c = 0; c < count; c++) y[dst + c] = x[src + c];
  }
  return y;
}
