/** bench --precision int8: int8 inference rows beside our fp32 plan, with `hardware` in --json; training is refused as int8. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OptionError } from '../../src/core/errors.js';
import { loadNativeBackend, nativeBackendStatus } from '../../src/backends/onednn/index.js';
import { benchCommand } from '../../src/cli/commands/bench.js';
import { main } from '../../src/cli/main.js';
import { int8Hardware } from '../../src/infer/int8-plan.js';

const skip = loadNativeBackend() ? false : `native backend unavailable: ${nativeBackendStatus().reason}`;
const TINY = ['--size', '71', '--width', '0.0625', '--middle-blocks', '1', '--repeats', '1', '--warmup', '1', '--min-time', '0'];

test('bench --precision int8 --json: an int8 row, our fp32 plan as its peer, and the hardware', { skip }, async () => {
  let out = '';
  const code = await main(['bench', '--json', '--precision', 'int8', '--cases', 'infer-b1-299', ...TINY], (s) => (out += s));
  assert.equal(code, 0);
  const rows = out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(rows.length, 1, out);
  const r = rows[0]!;
  assert.equal(r['precision'], 'int8');
  assert.equal(r['path'], 'compiled');
  assert.equal(r['hardware'], int8Hardware());
  const peer = r['peer'] as { name: string; imagesPerSec: number };
  assert.equal(peer.name, 'xception fp32 plan');
  assert.ok(Math.abs((r['ratio'] as number) - (r['imagesPerSec'] as number) / peer.imagesPerSec) < 1e-9);
});

test('bench --precision int8 refuses the op-by-op path and the reference backend', async () => {
  for (const flags of [
    ['--inference', 'op-by-op'],
    ['--inference', 'both'],
    ['--backend', 'reference'],
  ]) {
    await assert.rejects(
      benchCommand(['--precision', 'int8', '--cases', 'infer-b1-299', ...flags], () => {}),
      (e: Error) => e instanceof OptionError && /int8/.test(e.message),
      flags.join(' '),
    );
  }
});
