/**
 * The web page in real headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core):
 * it classifies an image as Node does (same weights, same reference-backend math, within 1e-4),
 * trains the small Xception with falling loss, and its downloaded weights load in Node. A
 * screenshot is kept in dist/test-artifacts/web/. Skipped, saying so, where Chromium is absent.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import type { BrowserContext, Page } from 'playwright-core';
import { startWebServer, type WebServer } from '../../src/cli/commands/serve-web.js';
import { FASHION_MNIST_CLASS_NAMES } from '../../src/data/dataset.js';
import { readImagePixels } from '../../src/data/image-file.js';
import { trainingPreprocessing } from '../../src/data/image-preprocessing.js';
import { preprocessPixels } from '../../src/data/transforms.js';
import { saveWeights } from '../../src/io/model-weights.js';
import { openWeights } from '../../src/io/weights-source.js';
import { buildModel } from '../../src/models/registry.js';
import { Random } from '../../src/core/random.js';
import type { Model } from '../../src/nn/model.js';
import { classify } from '../../src/predict/predict.js';
import { SMALL_IMAGE_XCEPTION_OPTIONS } from '../../src/train/step.js';
import { runCli } from '../cli/helpers.js';
import { referenceBackend } from '../../src/backends/index.js';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const ARTIFACTS = join(ROOT, 'dist/test-artifacts/web');
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install chromium; scripts/setup.sh does)`;
const PREP = trainingPreprocessing('xception');

/** Node's answer for an image: the pixels `xception predict` feeds the model and its probabilities. */
async function nodeProbabilities(model: Model, image: string): Promise<{ pixels: Uint8Array; probabilities: Float32Array }> {
  const [h, w, c] = model.inputShape as [number, number, 1 | 3];
  const pixels = await readImagePixels(image, [h, w, c], PREP);
  return { pixels, probabilities: classify(model, preprocessPixels(pixels, PREP.scaling), 1) };
}

/** A 45×37 RGB PNG (not the model's size or channels: the page must crop, grey and resize as Node does). */
async function writeTestImage(path: string): Promise<void> {
  const [w, h] = [45, 37];
  const rgb = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      rgb[i] = (x * 37 + y * 11) % 256;
      rgb[i + 1] = (x * y * 3) % 256;
      rgb[i + 2] = ((x - 22) ** 2 + (y - 18) ** 2 < 120 ? 230 : 20) + (x % 7);
    }
  await sharp(rgb, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toFile(path);
}

async function pageValue<T>(page: Page, expression: string): Promise<T> {
  return (await page.evaluate(expression)) as T;
}

function assertClose(actual: readonly number[], expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, what);
  const worst = Math.max(...actual.map((a, i) => Math.abs(a - expected[i]!)));
  assert.ok(worst <= 1e-4, `${what}: largest difference ${worst} > 1e-4 (page ${actual.join(', ')}; node ${[...expected].join(', ')})`);
}

describe('the web page in headless Chromium', { skip, timeout: 600_000 }, () => {
  let web: WebServer;
  let context: BrowserContext;
  let page: Page;
  const dir = mkdtempSync(join(tmpdir(), 'xception-web-'));
  const image = join(dir, 'pattern.png');
  const pageErrors: string[] = [];

  before(async () => {
    const { chromium } = await import('playwright-core');
    web = await startWebServer({ port: 0 });
    const args = ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update'];
    // launchPersistentContext passes a fresh --user-data-dir (the folder given) to the browser.
    context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: [...args, '--no-sandbox', '--disable-sync'],
      acceptDownloads: true,
    });
    page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await writeTestImage(image);
    await page.goto(web.url);
    await page.waitForFunction('window.xceptionPage && window.xceptionPage.backend !== null', null, { timeout: 60_000 });
  });

  after(async () => {
    await context?.close();
    await web?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the page is cross-origin isolated and runs a backend (wasm when present, else reference)', async () => {
    assert.equal(await pageValue<boolean>(page, 'window.crossOriginIsolated'), true);
    const backend = await pageValue<string>(page, 'window.xceptionPage.backend');
    assert.ok(['wasm', 'reference'].includes(backend), backend);
    assert.match((await page.textContent('#backend')) ?? '', new RegExp(`Backend: ${backend}`));
    assert.deepEqual(pageErrors, []);
  });

  test('an image classified in the page matches Node: same pixels, probabilities within 1e-4', async () => {
    const model = buildModel('xception', {
      ...SMALL_IMAGE_XCEPTION_OPTIONS,
      inputShape: [28, 28, 1],
      classes: 10,
      seed: 7,
      backend: referenceBackend,
    });
    // Freshly built, every class gets ~0.1, which a 1e-4 check could not tell apart: shifted batch-norm
    // means (inference mode) spread the probabilities.
    const rng = new Random(3);
    for (const v of model.weights.filter((w) => w.name.endsWith('/moving_mean'))) {
      v.setData(Float32Array.from({ length: v.size }, () => rng.uniform(-1, 1)));
    }
    const weights = join(dir, 'random.safetensors');
    await saveWeights(model, weights, 'safetensors', {
      model: 'xception',
      options: { ...SMALL_IMAGE_XCEPTION_OPTIONS, inputShape: [28, 28, 1], classes: 10, seed: 7 },
      classNames: [...FASHION_MNIST_CLASS_NAMES],
      preprocessing: PREP,
    });
    await page.setInputFiles('#weights-file', weights);
    await page.waitForFunction('window.xceptionPage.model !== null', null, { timeout: 60_000 });
    await page.setInputFiles('#image-file', image);
    await page.waitForFunction('window.xceptionPage.probabilities !== null', null, { timeout: 60_000 });
    const expected = await nodeProbabilities(model, image);
    assert.ok(Math.max(...expected.probabilities) - Math.min(...expected.probabilities) > 0.05, 'the probabilities are spread out');
    assert.deepEqual(await pageValue<number[]>(page, 'window.xceptionPage.pixels'), [...expected.pixels], 'shaped pixels');
    assertClose(await pageValue<number[]>(page, 'window.xceptionPage.probabilities'), expected.probabilities, 'probabilities');
    // On wasm the page compiles the network (one plan, threaded when isolated); on reference, op by op.
    const how = await pageValue<string>(page, 'window.xceptionPage.classifiedWith');
    const backend = await pageValue<string>(page, 'window.xceptionPage.backend');
    const threads = Math.min(await pageValue<number>(page, 'navigator.hardwareConcurrency'), 4);
    // The relaxed-SIMD kernels wherever the browser has relaxed SIMD (Chromium 114+).
    const relaxed = await page.evaluate(async () => {
      const simd = '/dist/src/backends/wasm/simd.js';
      return ((await import(simd)) as { relaxedSimdSupported(): boolean }).relaxedSimdSupported();
    });
    const simd = relaxed ? 'relaxed' : 'plain';
    assert.equal(
      how,
      backend === 'wasm'
        ? `compiled plan on wasm (${simd} SIMD), ${threads} thread${threads === 1 ? '' : 's'}`
        : 'op by op on reference backend',
    );
    assert.match((await page.textContent('#classified-with')) ?? '', /^Classified in \d+\.\d ms: /);
    const rows = await page.locator('#top5 tbody tr').count();
    assert.equal(rows, 5);
    const top = await pageValue<{ label: string }[]>(page, 'window.xceptionPage.top');
    assert.ok(FASHION_MNIST_CLASS_NAMES.includes(top[0]!.label), top[0]!.label);
    model.dispose();
  });

  test('training in the page lowers the loss; the downloaded weights load in Node and classify alike', async () => {
    await page.fill('#samples', '32');
    await page.fill('#batch-size', '16');
    await page.fill('#epochs', '4');
    await page.fill('#lr', '0.05');
    await page.click('#train-start');
    await page.waitForFunction('window.xceptionPage.trained !== null || window.xceptionPage.errors.length > 0', null, { timeout: 540_000 });
    assert.deepEqual(await pageValue<unknown[]>(page, 'window.xceptionPage.errors'), []);
    const losses = await pageValue<number[]>(page, 'window.xceptionPage.losses');
    assert.equal(losses.length, 8, 'two steps per epoch, four epochs');
    assert.ok(losses.every(Number.isFinite), losses.join(', '));
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(mean(losses.slice(-3)) < mean(losses.slice(0, 3)), `loss did not fall: ${losses.join(', ')}`);
    assert.equal(
      await page
        .locator('#curve-loss')
        .getAttribute('points')
        .then((p) => p?.split(' ').length),
      8,
    );

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'page.png'), fullPage: true });

    // The trained model classifies in the page, then its weights go to Node.
    await page.evaluate('window.xceptionPage.probabilities = null');
    await page.setInputFiles('#image-file', image);
    await page.waitForFunction('window.xceptionPage.probabilities !== null', null, { timeout: 60_000 });
    const downloading = page.waitForEvent('download');
    await page.click('#download');
    const file = join(dir, 'trained.safetensors');
    await (await downloading).saveAs(file);

    const source = await openWeights(file);
    const trained = source.buildModel({ backend: referenceBackend });
    await source.loadInto(trained);
    const expected = await nodeProbabilities(trained, image);
    assertClose(await pageValue<number[]>(page, 'window.xceptionPage.probabilities'), expected.probabilities, 'trained model');
    const cli = await runCli(['predict', '--weights', file, image]);
    assert.equal(cli.code, 0, cli.err);
    assert.ok(
      FASHION_MNIST_CLASS_NAMES.some((name) => cli.out.includes(name)),
      cli.out,
    );
    assert.deepEqual(pageErrors, []);
  });

  test('past its wasm memory cap the page shows a clear error and keeps working (trains, classifies)', async (t) => {
    if ((await pageValue<string>(page, 'window.xceptionPage.backend')) !== 'wasm')
      return void t.skip('the page runs the reference backend here');
    const small = await context.newPage();
    small.on('pageerror', (e) => pageErrors.push(e.message));
    try {
      await small.goto(`${web.url}?wasm-memory-mb=40`);
      await small.waitForFunction('window.xceptionPage && window.xceptionPage.backend !== null', null, { timeout: 60_000 });
      // A batch of 512 images needs far more than 40 MiB of activations.
      // Waits until the run ends: trained, or one more error than `errorsBefore`.
      const train = async (samples: string, batch: string, errorsBefore: number) => {
        await small.fill('#samples', samples);
        await small.fill('#batch-size', batch);
        await small.fill('#epochs', '1');
        await small.click('#train-start');
        const done = `window.xceptionPage.trained !== null || window.xceptionPage.errors.length > ${errorsBefore}`;
        await small.waitForFunction(done, null, { timeout: 300_000 });
      };
      await train('512', '512', 0);
      const errors = await pageValue<Array<{ op: string; message: string }>>(small, 'window.xceptionPage.errors');
      assert.equal(errors.length, 1, JSON.stringify(errors));
      assert.equal(errors[0]!.op, 'train');
      assert.match(errors[0]!.message, /past the wasm memory limit of 40\.0 MiB/);
      assert.match((await small.textContent('#error')) ?? '', /train: .*past the wasm memory limit/);
      // The same page then trains a batch that fits and classifies with the result.
      await train('16', '8', 1);
      const after = await pageValue<unknown[]>(small, 'window.xceptionPage.errors');
      assert.equal(after.length, 1, JSON.stringify(after));
      assert.notEqual(await pageValue<unknown>(small, 'window.xceptionPage.trained'), null);
      await small.setInputFiles('#image-file', image);
      await small.waitForFunction('window.xceptionPage.probabilities !== null', null, { timeout: 60_000 });
      const probabilities = await pageValue<number[]>(small, 'window.xceptionPage.probabilities');
      assert.ok(Math.abs(probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-4, probabilities.join(', '));
      assert.deepEqual(pageErrors, []);
    } finally {
      await small.close();
    }
  });
});
