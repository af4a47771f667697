/**
 * Strided 1×1 convolutions with few input channels (the residual shortcuts of narrow Xceptions)
 * on the onednn backend against the reference. oneDNN 2.6's jit_1x1 filter gradient overran its
 * workspace on these (fewer than 16 input channels, stride > 1): training `--width 0.125` at
 * 64×64 died with SIGSEGV in the first step. The checks run in a child process
 * (test/helpers/strided-pointwise-child.ts) so that a crash or hang fails these tests, naming
 * the signal, instead of ending the runner.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const childScript = fileURLToPath(new URL('../helpers/strided-pointwise-child.js', import.meta.url));

/** The child's JSON, or null (test skipped) when the addon is not built. */
function runChild(t: TestContext, args: string[]): unknown {
  const r = spawnSync(process.execPath, [childScript, ...args], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.error, undefined, `child ${args.join(' ')}: ${r.error?.message} (a hang?)`);
  assert.ok(
    r.status === 0 && r.signal === null,
    `child ${args.join(' ')} failed (status ${r.status}, signal ${r.signal}):\n${r.stderr.slice(-2000)}`,
  );
  const out = JSON.parse(r.stdout) as { skipped?: string };
  if (out.skipped !== undefined) {
    t.skip(out.skipped);
    return null;
  }
  return out;
}

interface KernelCase {
  label: string;
  inChannels: number;
  impl: string;
  errors: number[];
}

test('strided 1×1 convolutions with 1–15 input channels: all three passes agree with the reference, the filter gradient runs as gather + GEMM', (t) => {
  const cases = runChild(t, ['kernels']) as KernelCase[] | null;
  if (!cases) return;
  assert.ok(cases.length >= 10);
  for (const c of cases) {
    const passes = ['forward', 'backward input', 'backward filter'];
    c.errors.forEach((e, i) => assert.ok(e <= 1e-4, `${c.label} ${passes[i]}: relative error ${e}`));
    // Below 16 input channels oneDNN's convolution must never see the filter gradient.
    assert.equal(c.impl === 'gather+gemm:dnnl_sgemm', c.inChannels < 16, `${c.label}: ${c.impl}`);
  }
});

interface ModelRun {
  loss: number;
  referenceLoss: number;
  weights: number;
  total: number;
  worst: number;
  worstName: string;
}

// [width, size, batch]: the three measured crashes.
for (const [width, size, batch] of [
  [0.125, 64, 16],
  [0.125, 64, 1],
  [0.0625, 64, 16],
] as const) {
  test(`xception stem small, width ${width}, ${size}×${size}, batch ${batch}: a training step on onednn matches the reference`, (t) => {
    const r = runChild(t, ['model', String(width), String(size), String(batch)]) as ModelRun | null;
    if (!r) return;
    assert.ok(Math.abs(r.loss - r.referenceLoss) <= 1e-4 * Math.abs(r.referenceLoss), `loss ${r.loss} vs ${r.referenceLoss}`);
    assert.ok(r.weights > 50, `${r.weights} weights compared`);
    // Same bounds as native-xception.test.ts (ReLU masks may flip on rounding).
    assert.ok(r.total <= 2e-2, `all gradients: L2 relative error ${r.total}`);
    assert.ok(r.worst <= 0.1, `gradient of ${r.worstName}: L2 relative error ${r.worst}`);
    t.diagnostic(`loss ${r.loss}; gradients L2 ${r.total.toExponential(2)}, worst ${r.worstName} ${r.worst.toExponential(2)}`);
  });
}
