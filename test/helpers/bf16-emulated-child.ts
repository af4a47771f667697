/**
 * Child process of test/backends/native-bf16.test.ts, run with ONEDNN_MAX_CPU_ISA=AVX512_CORE so
 * that oneDNN emulates bf16 even on a CPU that has it. Prints one JSON line:
 *   { cpuIsa, bf16, impl, errors: [forward, backward input, backward filter] }
 * the errors being normwise relative errors of the bf16 kernels against the float64 reference.
 */
import { Random } from '../../src/core/random.js';
import { referenceBackend as R } from '../../src/backends/reference/index.js';
import { nativeBackendStatus, requireNativeBackend } from '../../src/backends/onednn/index.js';
import { randomArray } from './arrays.js';
import { convFilterSize, convInputSize, convOutputSize, convParams } from './params.js';

function relError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let err = 0,
    scale = 0;
  for (let i = 0; i < expected.length; i++) {
    err = Math.max(err, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return scale === 0 ? err : err / scale;
}

const n = requireNativeBackend();
const status = nativeBackendStatus();
n.setConvPrecision('bf16');
const p = convParams({ batch: 2, height: 9, width: 9, inChannels: 32, outChannels: 48, kernel: [3, 3], padding: 'same' });
const rng = new Random(5);
const up = (size: number) => {
  const v = Float32Array.from(randomArray(rng, size));
  return { n: n.upload(v), r: R.upload(Float64Array.from(v)) };
};
const x = up(convInputSize(p)),
  w = up(convFilterSize(p)),
  dy = up(convOutputSize(p));
const errors = [
  relError(
    n.download(n.conv2d(x.n, w.n, p), convOutputSize(p), 'float32'),
    R.download(R.conv2d(x.r, w.r, p), convOutputSize(p), 'float64'),
  ),
  relError(
    n.download(n.conv2dBackwardInput(dy.n, w.n, p), convInputSize(p), 'float32'),
    R.download(R.conv2dBackwardInput(dy.r, w.r, p), convInputSize(p), 'float64'),
  ),
  relError(
    n.download(n.conv2dBackwardFilter(x.n, dy.n, p), convFilterSize(p), 'float32'),
    R.download(R.conv2dBackwardFilter(x.r, dy.r, p), convFilterSize(p), 'float64'),
  ),
];
console.log(JSON.stringify({ cpuIsa: status.cpuIsa, bf16: status.bf16, impl: n.describeConv(p), errors }));
