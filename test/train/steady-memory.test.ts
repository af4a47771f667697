import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tryBackend } from '../../src/index.js';

const child = fileURLToPath(new URL('../helpers/steady-memory-child.js', import.meta.url));

test('2,000 native training steps with the data loader, compiled evaluations and checkpoints keep the memory held within 5% of its early level', {
  skip: tryBackend('native') ? false : 'native backend not built',
  timeout: 600_000,
}, () => {
  // One OpenMP thread: on a shared 2-core machine the default threads spin-wait for each other
  // and 2,000 small steps take over ten minutes; with one, about 40 s (memory held does not depend on it).
  const env = { ...process.env, OMP_NUM_THREADS: '1' };
  const r = spawnSync(process.execPath, ['--max-semi-space-size=1', child], {
    encoding: 'utf8',
    timeout: 580_000,
    env,
  });
  assert.equal(r.status, 0, r.stderr);
  const { early, late, steps, compiled } = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  assert.equal(steps, 2000);
  assert.equal(compiled, true, 'the evaluations ran op by op, not through compiled plans');
  const mib = (b: number) => (b / 2 ** 20).toFixed(1);
  // V8 keeps heap pages it has committed even when they hold nothing live (heapTotal grows by a
  // few MiB over the run while heapUsed stays flat); what the program holds is RSS less those
  // free committed pages. Raw RSS is reported in the message. Early and late are each the highest
  // of several samples (steps 100–300 and 1,800–2,000; see the child).
  const held = (s: { rss: number; heapUsed: number; heapTotal: number }) => s.rss - (s.heapTotal - s.heapUsed);
  const growth = held(late) / held(early) - 1;
  assert.ok(
    growth < 0.05,
    `memory held grew ${(100 * growth).toFixed(1)}% (${mib(held(early))} → ${mib(held(late))} MiB; raw RSS ${mib(early.rss)} → ${mib(late.rss)} MiB)`,
  );
  assert.ok(late.heapUsed < early.heapUsed * 1.05 + 2 ** 20, `live JS heap grew: ${mib(early.heapUsed)} → ${mib(late.heapUsed)} MiB`);
});
