/**
 * The browser half of the wasm peer benchmark: serves web/bench.html with `serve-web`'s server
 * (COOP/COEP, so the page gets threads), the peers' files straight from node_modules and the
 * model files from `dataDir`, opens it in headless Chromium (playwright-core, /usr/bin/chromium)
 * and returns what the page measured.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWebServer } from '../../cli/commands/serve-web.js';
import type { Timed } from '../wasm-peers-core.js';

export interface BrowserRunOptions {
  root: string;
  /** Folder with model.onnx and model.safetensors. */
  dataDir: string;
  size: number;
  rounds: number;
  perRound: number;
  threads: number;
}

export interface BrowserResults {
  userAgent: string;
  isolated: boolean;
  results: Timed[];
}

const CHROMIUM = '/usr/bin/chromium';

export async function browserRun(o: BrowserRunOptions): Promise<BrowserResults> {
  const { chromium } = await import('playwright-core');
  const nm = join(o.root, 'node_modules');
  const web = await startWebServer({
    port: 0,
    root: o.root,
    extraRoots: { '/ort/': join(nm, 'onnxruntime-web', 'dist'), '/tfjs/': join(nm, '@tensorflow'), '/bench-data/': o.dataDir },
  });
  const profile = mkdtempSync(join(tmpdir(), 'xception-bench-profile-'));
  const args = ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update'];
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...args, '--no-sandbox', '--disable-sync'],
  });
  try {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    const query = `size=${o.size}&rounds=${o.rounds}&perRound=${o.perRound}&threads=${o.threads}`;
    await page.goto(`${web.url}web/bench.html?${query}`);
    await page.waitForFunction('window.benchResult !== undefined || window.benchError !== undefined', null, { timeout: 3_600_000 });
    const failure = (await page.evaluate('window.benchError')) as string | undefined;
    if (failure) throw new Error(`the bench page failed: ${failure} (${errors.join('; ')})`);
    return (await page.evaluate('window.benchResult')) as BrowserResults;
  } finally {
    await context.close();
    await web.close();
    rmSync(profile, { recursive: true, force: true });
  }
}
