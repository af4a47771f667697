/**
 * The wasm peer benchmark (src/bench/scripts/wasm-peers.ts) end to end at a tiny size: 71×71
 * (Xception's minimum), one round, in Node and — where /usr/bin/chromium exists — in headless
 * Chromium. Checks that every contestant ran, timed something, and computed the same outputs
 * from the same weights (which also checks the bench-only tfjs Xception and the ONNX export).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Timed } from '../../src/bench/wasm-peers-core.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SCRIPT = join(ROOT, 'dist/src/bench/scripts/wasm-peers.js');
const hasChromium = existsSync('/usr/bin/chromium');
const wasmBuilt = existsSync(join(ROOT, 'wasm/xception.wasm'));

function checkContestants(results: Timed[], where: string): void {
  const names = results.map((r) => r.name);
  for (const want of ['ours, wasm', 'onnxruntime-web 1.30', 'tfjs-backend-wasm 4.22'])
    assert.ok(names.includes(want), `${where}: ${want} missing from ${names.join(', ')}`);
  for (const r of results) {
    assert.ok(Number.isFinite(r.medianMs) && r.medianMs > 0, `${where}: ${r.name} timed ${r.medianMs} ms`);
    // Softmax outputs of the same network on the same weights and pixels.
    assert.ok(r.spread > 0, `${where}: ${r.name}'s outputs are all equal`);
    assert.ok(r.maxDiff <= 1e-3 * r.spread, `${where}: ${r.name}'s outputs differ from ours by ${r.maxDiff} (spread ${r.spread})`);
  }
}

test('wasm-peers runs end to end at 71×71, one round', {
  skip: wasmBuilt ? false : 'wasm/xception.wasm is not built',
  timeout: 600_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'xception-wasm-peers-test-'));
  try {
    const json = join(dir, 'out.json');
    const args = ['--size', '71', '--rounds', '1', '--per-round', '1', '--train-rounds', '1', '--train-size', '71', '--main-batch', '4'];
    const { stdout } = await promisify(execFile)(process.execPath, [SCRIPT, ...args, '--json', json], { cwd: ROOT, timeout: 590_000 });
    assert.match(stdout, /\| ours, wasm \|/);
    const out = JSON.parse(readFileSync(json, 'utf8')) as {
      node: Timed[];
      browser: { isolated: boolean; results: Timed[] } | null;
      train: { what: string; wasm: number; native: number | null }[];
    };
    checkContestants(out.node, 'Node');
    if (hasChromium) {
      assert.ok(out.browser, 'Chromium is installed but the page did not run');
      assert.equal(out.browser.isolated, true, 'the bench page is cross-origin isolated');
      checkContestants(out.browser.results, 'Chromium');
    }
    assert.equal(out.train.length, 2);
    for (const t of out.train) assert.ok(t.wasm > 0 && Number.isFinite(t.wasm), `${t.what}: ${t.wasm} images/s`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
