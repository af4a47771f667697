/**
 * The page's compute, off the main thread so the page stays responsive: it loads weights,
 * classifies decoded images and trains the small Xception on Fashion-MNIST, all with the library's
 * browser build (dist/src/browser.js, plain ESM as served by `xception serve-web`).
 *
 * Messages in: init {prefer, memoryLimitMB}, load-weights {bytes, label}, classify {image: {rgb, height, width}},
 * train {samples, batchSize, epochs, lr, seed}, stop, download.
 * Messages out: backend, model, probabilities, progress, trained, weights, error (each {type, ...}).
 */
import {
  buildModel,
  classify,
  compiledFallbackReason,
  FASHION_MNIST_CLASS_NAMES,
  modelFromSafetensors,
  modelToSafetensors,
  Optimizer,
  parseIdx,
  preprocessPixels,
  Random,
  SMALL_IMAGE_XCEPTION_OPTIONS,
  shapePixels,
  trainingPreprocessing,
  trainingStep,
  useBrowserBackend,
} from '../dist/src/browser.js';

/** The model the page classifies with: loaded from a file or trained here. */
let current = null;
let backend = null;
let stopRequested = false;
let fashion = null;

const post = (message, transfer = []) => self.postMessage(message, transfer);

self.onmessage = async (event) => {
  const message = event.data;
  try {
    if (message.type === 'init') await init(message);
    else if (message.type === 'load-weights') loadWeights(message);
    else if (message.type === 'classify') classifyImage(message.image);
    else if (message.type === 'train') await train(message);
    else if (message.type === 'stop') stopRequested = true;
    else if (message.type === 'download') download();
  } catch (e) {
    post({ type: 'error', op: message.type, message: e instanceof Error ? e.message : String(e) });
  }
};

async function init({ prefer, memoryLimitMB }) {
  const choice = await useBrowserBackend({ prefer: prefer ?? 'auto', ...(memoryLimitMB ? { memoryLimitMB } : {}) });
  backend = choice.backend;
  post({ type: 'backend', name: choice.name, reason: choice.reason ?? null, isolated: self.crossOriginIsolated === true });
}

function describe(record, model, source) {
  return {
    type: 'model',
    source,
    model: record.model,
    inputShape: [...model.inputShape],
    classes: model.outputShape[0],
    classNames: record.classNames ?? null,
    preprocessing: record.preprocessing ?? null,
    parameters: model.countParams(),
  };
}

function loadWeights({ bytes, label }) {
  const loaded = modelFromSafetensors(new Uint8Array(bytes), label);
  current?.model.dispose();
  current = loaded;
  post(describe(loaded.record, loaded.model, label));
}

/** Top-5 of a decoded image, shaped (crop, channels, resize) and scaled exactly as `xception predict` does. */
function classifyImage(image) {
  if (!current) throw new Error('load a weights file (or train a model) first');
  const { model, record } = current;
  const [height, width, channels] = model.inputShape;
  const prep = record.preprocessing ?? { resize: 'stretch', interpolation: 'nearest', scaling: 'xception' };
  const pixels = shapePixels(image, [height, width, channels], prep);
  const started = performance.now();
  const probabilities = classify(model, preprocessPixels(pixels, prep.scaling), 1);
  const ms = performance.now() - started;
  const names = record.classNames ?? null;
  const order = Array.from(probabilities, (p, index) => ({ index, p })).sort((a, b) => b.p - a.p || a.index - b.index);
  const top = order.slice(0, 5).map(({ index, p }) => ({ index, label: names ? names[index] : String(index), probability: p }));
  post({ type: 'probabilities', probabilities, top, pixels: { data: pixels, height, width, channels }, ms, how: classifiedHow(model) });
}

/** How classify ran: the wasm backend compiles the network into one plan; elsewhere it runs op by op. */
function classifiedHow(model) {
  const fallback = compiledFallbackReason(model);
  if (backend?.name !== 'wasm' || fallback !== null)
    return `op by op on ${backend?.name ?? 'no'} backend${fallback ? ` (${fallback})` : ''}`;
  const threads = backend.threads();
  return `compiled plan on wasm (${backend.simd()} SIMD), ${threads} thread${threads === 1 ? '' : 's'}`;
}

/** The Fashion-MNIST training split from the server (gzip or not), parsed once. */
async function fashionMnist() {
  if (fashion) return fashion;
  const [images, labels] = await Promise.all([fetchIdx('/data/fashion-mnist/train-images'), fetchIdx('/data/fashion-mnist/train-labels')]);
  const [count, height, width] = images.shape;
  if (labels.shape[0] !== count) throw new Error(`${count} images but ${labels.shape[0]} labels`);
  fashion = { images: images.data, labels: labels.data, count, height, width };
  return fashion;
}

async function fetchIdx(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status} (is the Fashion-MNIST package installed on the server?)`);
  let bytes = new Uint8Array(await response.arrayBuffer());
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
    bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  }
  return parseIdx(bytes, url);
}

function checkTrainOptions(o) {
  const int = (name, lo, hi) => {
    if (!Number.isInteger(o[name]) || o[name] < lo || o[name] > hi) throw new Error(`${name} must be an integer in [${lo}, ${hi}]`);
  };
  int('samples', 1, 60000);
  int('batchSize', 1, 512);
  int('epochs', 1, 100);
  int('seed', 0, 2 ** 31 - 1);
  if (!(o.lr > 0 && o.lr <= 10)) throw new Error('lr must be in (0, 10]');
}

/** Trains the main job's network (small stem, width 0.25, 2 middle blocks) with SGD + Nesterov momentum. */
async function train(options) {
  checkTrainOptions(options);
  const data = await fashionMnist();
  const samples = Math.min(options.samples, data.count);
  const model = buildModel('xception', {
    ...SMALL_IMAGE_XCEPTION_OPTIONS,
    inputShape: [data.height, data.width, 1],
    classes: 10,
    seed: options.seed,
  });
  const optimizer = new Optimizer('sgd', { lr: options.lr, momentum: 0.9, nesterov: true, weightDecay: 5e-5 });
  const parts = { model, optimizer, ema: null, labelSmoothing: 0, classes: 10, backend };
  const record = { model: 'xception', classNames: [...FASHION_MNIST_CLASS_NAMES], preprocessing: trainingPreprocessing('xception') };
  current?.model.dispose();
  current = { model, record };
  stopRequested = false;
  const result = await trainLoop(parts, data, samples, options);
  post({ type: 'trained', ...result });
  post(describe(record, model, 'trained in this page'));
}

async function trainLoop(parts, data, samples, { batchSize, epochs, seed }) {
  const rng = new Random(seed);
  const perEpoch = Math.ceil(samples / batchSize);
  const steps = perEpoch * epochs;
  const started = performance.now();
  let step = 0;
  for (let epoch = 0; epoch < epochs && !stopRequested; epoch++) {
    const order = rng.permutation(samples);
    for (let b = 0; b < perEpoch && !stopRequested; b++) {
      const batch = makeBatch(data, order.subarray(b * batchSize, (b + 1) * batchSize));
      // From scratch: batch norm's statistics warm up by the step (evaluation matches training sooner).
      const { loss, correct } = trainingStep({ ...parts, statisticsStep: step }, batch);
      step++;
      const seconds = (performance.now() - started) / 1000;
      post({
        type: 'progress',
        step,
        steps,
        epoch: epoch + 1,
        epochs,
        loss,
        accuracy: correct / batch.size,
        imagesPerSecond: (step * batchSize) / seconds,
      });
      // Let 'stop' and 'download' messages in between steps.
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }
  return { steps: step, stopped: stopRequested, seconds: (performance.now() - started) / 1000 };
}

function makeBatch(data, indices) {
  const size = indices.length;
  const pixelsPer = data.height * data.width;
  const pixels = new Uint8Array(size * pixelsPer);
  const y = new Int32Array(size);
  indices.forEach((index, i) => {
    pixels.set(data.images.subarray(index * pixelsPer, (index + 1) * pixelsPer), i * pixelsPer);
    y[i] = data.labels[index];
  });
  return { x: preprocessPixels(pixels, 'xception'), y, size, shape: [size, data.height, data.width, 1] };
}

/** The current model as a safetensors file with its record, for `xception predict --weights`. */
function download() {
  if (!current) throw new Error('no model to download: load weights or train first');
  const bytes = modelToSafetensors(current.model, {
    ...(current.record.classNames ? { classNames: current.record.classNames } : {}),
    ...(current.record.preprocessing ? { preprocessing: current.record.preprocessing } : {}),
  });
  post({ type: 'weights', bytes: bytes.buffer }, [bytes.buffer]);
}
