/**
 * Output size and padding of a sliding window, written independently of the library for tests:
 * TensorFlow/Keras 'valid' and 'same' (the odd extra padding row or column goes at the end).
 */
export interface AxisWindow {
  out: number;
  padBefore: number;
  padAfter: number;
}

export function validWindow(inSize: number, kernel: number, stride: number, dilation = 1): AxisWindow {
  const span = dilation * (kernel - 1) + 1;
  return { out: Math.floor((inSize - span) / stride) + 1, padBefore: 0, padAfter: 0 };
}

export function sameWindow(inSize: number, kernel: number, stride: number, dilation = 1): AxisWindow {
  const span = dilation * (kernel - 1) + 1;
  const out = Math.ceil(inSize / stride);
  const total = Math.max((out - 1) * stride + span - inSize, 0);
  const padBefore = Math.floor(total / 2);
  return { out, padBefore, padAfter: total - padBefore };
}
