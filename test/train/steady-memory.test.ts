import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tryBackend } from '../../src/index.js';

const child = fileURLToPath(new URL('../helpers/steady-memory-child.js', import.meta.url));

test('2,000 native training steps keep the memory held within 5% of where it was after the first 100', {
  skip: tryBackend('native') ? false : 'native backend not built',
  timeout: 600_000,
}, () => {
  const r = spawnSync(process.execPath, ['--max-semi-space-size=1', child], { encoding: 'utf8', timeout: 580_000 });
  assert.equal(r.status, 0, r.stderr);
  const { after100, after2000 } = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  const mib = (b: number) => (b / 2 ** 20).toFixed(1);
  // V8 keeps heap pages it has committed even when they hold nothing live (heapTotal grows by a
  // few MiB over the run while heapUsed stays flat); what the program holds is RSS less those
  // free committed pages. Raw RSS is reported in the message.
  const held = (s: { rss: number; heapUsed: number; heapTotal: number }) => s.rss - (s.heapTotal - s.heapUsed);
  const growth = held(after2000) / held(after100) - 1;
  assert.ok(
    growth < 0.05,
    `memory held grew ${(100 * growth).toFixed(1)}% (${mib(held(after100))} → ${mib(held(after2000))} MiB; raw RSS ${mib(after100.rss)} → ${mib(after2000.rss)} MiB)`,
  );
  assert.ok(
    after2000.heapUsed < after100.heapUsed * 1.05 + 2 ** 20,
    `live JS heap grew: ${mib(after100.heapUsed)} → ${mib(after2000.heapUsed)} MiB`,
  );
});
