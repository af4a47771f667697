/** `xception serve-web` and the browser build, without a browser: headers, paths, errors, the import graph. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { OptionError } from '../../src/core/errors.js';
import { startWebServer } from '../../src/cli/commands/serve-web.js';
import { runCli } from '../cli/helpers.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

async function get(url: string, method = 'GET'): Promise<Response> {
  return fetch(url, { method, redirect: 'manual' });
}

test('serve-web: the page, the browser build and the data are served cross-origin isolated', async () => {
  const web = await startWebServer({ port: 0 });
  try {
    for (const path of ['web/index.html', 'web/worker.js', 'dist/src/browser.js']) {
      const r = await get(new URL(path, web.url).href);
      assert.equal(r.status, 200, path);
      assert.equal(r.headers.get('cross-origin-opener-policy'), 'same-origin', path);
      assert.equal(r.headers.get('cross-origin-embedder-policy'), 'require-corp', path);
      await r.arrayBuffer();
    }
    const js = await get(new URL('dist/src/browser.js', web.url).href);
    assert.match(js.headers.get('content-type') ?? '', /^text\/javascript/);
    await js.arrayBuffer();
    const root = await get(web.url);
    assert.equal(root.status, 302);
    assert.equal(root.headers.get('location'), '/web/index.html');
    await root.arrayBuffer();
    // The page's options survive the redirect.
    const withOptions = await get(`${web.url}?backend=wasm&wasm-memory-mb=64`);
    assert.equal(withOptions.headers.get('location'), '/web/index.html?backend=wasm&wasm-memory-mb=64');
    await withOptions.arrayBuffer();
    const labels = await get(new URL('data/fashion-mnist/train-labels', web.url).href, 'HEAD');
    assert.equal(labels.status, 200, 'the Fashion-MNIST labels (Debian dataset-fashion-mnist) are served');
    assert.equal(labels.headers.get('cross-origin-embedder-policy'), 'require-corp');
  } finally {
    await web.close();
  }
});

test('serve-web: nothing outside web/, dist/src/, wasm/ and the four IDX files is reachable', async () => {
  const web = await startWebServer({ port: 0 });
  try {
    for (const path of [
      'package.json',
      'web/../package.json',
      'web/%2e%2e/package.json',
      'dist/src/../../package.json',
      'data/fashion-mnist/../../etc/passwd',
      'data/fashion-mnist/other',
      'src/browser.ts',
    ]) {
      const r = await get(`${web.url}${path}`);
      assert.equal(r.status, 404, path);
      await r.arrayBuffer();
    }
    const post = await fetch(new URL('web/index.html', web.url), { method: 'POST' });
    assert.equal(post.status, 405);
    await post.arrayBuffer();
  } finally {
    await web.close();
  }
});

test('serve-web: a port in use is a clear OptionError, and the CLI says so without a stack trace', async () => {
  const first = await startWebServer({ port: 0 });
  const port = Number(new URL(first.url).port);
  try {
    await assert.rejects(
      startWebServer({ port }),
      (e: unknown) => e instanceof OptionError && /port \d+ on 127\.0\.0\.1 is already in use/.test(e.message),
    );
    const cli = await runCli(['serve-web', '--port', String(port)]);
    assert.equal(cli.code, 2);
    assert.match(cli.err, /already in use: choose another with --port/);
    assert.doesNotMatch(cli.err, /\n\s+at /);
    const bad = await runCli(['serve-web', '--port', '70000']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--port must be an integer in \[0, 65535\]/);
  } finally {
    await first.close();
  }
});

test('serve-web is listed in the main help and has its own', async () => {
  const help = await runCli(['--help']);
  assert.match(help.out, /serve-web/);
  const own = await runCli(['serve-web', '--help']);
  assert.equal(own.code, 0);
  assert.match(own.out, /--port N/);
  assert.match(own.out, /--host ADDR .*127\.0\.0\.1/);
});

test('the browser build imports no Node built-ins or packages, and uses no Node globals', async () => {
  const script = pathToFileURL(join(ROOT, 'scripts/browser-imports.mjs')).href;
  const walker = (await import(script)) as {
    findNonBrowserImports(entry: string): { bad: { spec: string; chain: string[] }[]; modules: number; files: string[] };
  };
  const { bad, modules, files } = walker.findNonBrowserImports(join(ROOT, 'dist/src/browser.js'));
  assert.deepEqual(
    bad.map((b) => `${b.spec} <- ${b.chain.join(' <- ')}`),
    [],
  );
  assert.ok(modules > 30, `the walk reached ${modules} modules`);
  const globals = /\b(process\.|Buffer\.|setImmediate\(|__dirname|require\()/;
  for (const file of files) {
    const code = readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => !/^\s*(\/\/|\*|\/\*)/.test(line));
    const hit = code.find((line) => globals.test(line));
    assert.equal(hit, undefined, `${file} uses a Node global: ${hit}`);
  }
  // The walker itself finds a leak: the Node entry reaches node:* modules.
  assert.ok(walker.findNonBrowserImports(join(ROOT, 'dist/src/index.js')).bad.some((b) => b.spec.startsWith('node:')));
});

test('the browser build compiles plans on the wasm backend only: a model elsewhere is a clear error', () => {
  // A child process that loads nothing but the browser build: no native backend was provided.
  const browser = pathToFileURL(join(ROOT, 'dist/src/browser.js')).href;
  const code = `
    const x = await import(${JSON.stringify(browser)});
    const m = x.buildModel('xception', { stem: 'small', width: 0.0625, middleBlocks: 0, inputShape: [16, 16, 1], classes: 3 });
    try { x.compileInference(m, { batch: 1 }); console.log('compiled'); } catch (e) { console.log(e.name + ': ' + e.message); }
    console.log(x.classify(m, new Float32Array(16 * 16), 1).length);`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
  assert.match(out, /^BackendError: native backend unavailable: not part of this build/m);
  // classify falls back to op by op on the reference backend.
  assert.match(out, /^3$/m);
});
