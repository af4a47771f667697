/**
 * The page's main thread: files in, results out. Decoding an image (createImageBitmap + canvas)
 * happens here; everything the library computes runs in worker.js. `window.xceptionPage` exposes
 * the page's state for tests (probabilities, losses, backend) — read-only by convention.
 */
const $ = (id) => document.getElementById(id);
const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
const state = {
  backend: null,
  model: null,
  probabilities: null,
  pixels: null,
  top: null,
  /** How the last image was classified: 'compiled plan, …' or 'op by op …'. */
  classifiedWith: null,
  losses: [],
  training: false,
  trained: null,
  errors: [],
};
window.xceptionPage = state;

// The backend: ?backend=reference|wasm forces one; by default wasm when it loads, else reference.
// ?wasm-memory-mb=N caps the wasm memory below the browser's 4 GiB (to see what a smaller device does).
const query = new URLSearchParams(location.search);
const prefer = query.get('backend') ?? 'auto';
const memoryLimitMB = query.has('wasm-memory-mb') ? Number(query.get('wasm-memory-mb')) : undefined;
worker.postMessage({ type: 'init', prefer, memoryLimitMB });

const handlers = {
  backend: (m) => {
    state.backend = m.name;
    const threads = m.isolated ? 'cross-origin isolated' : 'not cross-origin isolated (no threads)';
    $('backend').textContent = `Backend: ${m.name}${m.reason ? ` (${m.reason})` : ''}; ${threads}.`;
    $('backend').dataset.state = 'ready';
  },
  model: (m) => {
    state.model = m;
    const names = m.classNames ? `classes: ${m.classNames.join(', ')}` : `${m.classes} classes (no names recorded)`;
    $('model-info').textContent =
      `${m.model} (${m.source}): input ${m.inputShape.join('×')}, ${m.parameters.toLocaleString()} parameters; ${names}.`;
    $('download').disabled = false;
  },
  probabilities: showTop5,
  progress: showProgress,
  trained: (m) => {
    state.training = false;
    state.trained = m;
    const how = m.stopped ? 'Stopped' : 'Done';
    $('train-status').textContent =
      `${how}: ${m.steps} steps in ${m.seconds.toFixed(1)} s. Drop an image to classify it with this model, or download its weights.`;
    setTraining(false);
  },
  weights: (m) => saveFile(new Blob([m.bytes], { type: 'application/octet-stream' }), 'xception-fashion-mnist.safetensors'),
  error: (m) => {
    state.errors.push(m);
    if (m.op === 'train') {
      state.training = false;
      setTraining(false);
    }
    $('error').hidden = false;
    $('error').textContent = `${m.op}: ${m.message}`;
  },
};
worker.onmessage = (event) => handlers[event.data.type]?.(event.data);

function clearError() {
  $('error').hidden = true;
}

// ---- weights and images

$('weights-file').addEventListener('change', async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  clearError();
  const bytes = await file.arrayBuffer();
  worker.postMessage({ type: 'load-weights', bytes, label: file.name }, [bytes]);
});

$('image-file').addEventListener('change', (e) => {
  const file = e.target.files[0];
  // Cleared so that picking the same file again (say, after training) classifies it again.
  e.target.value = '';
  if (file) classifyFile(file);
});
const drop = $('drop');
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const file = e.dataTransfer.files[0];
  if (file) classifyFile(file);
});

/** Decodes the file to RGB at its own size (no colour conversion, no smoothing) and sends it to the worker. */
async function classifyFile(file) {
  clearError();
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch {
    handlers.error({ op: 'classify', message: `${file.name} is not an image this browser can decode` });
    return;
  }
  const { width, height } = bitmap;
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, o = 0; i < rgba.length; i += 4, o += 3) {
    rgb[o] = rgba[i];
    rgb[o + 1] = rgba[i + 1];
    rgb[o + 2] = rgba[i + 2];
  }
  drawPreview(bitmap);
  worker.postMessage({ type: 'classify', image: { rgb, height, width } }, [rgb.buffer]);
}

function drawPreview(bitmap) {
  const preview = $('preview');
  const ctx = preview.getContext('2d');
  const scale = Math.min(preview.width / bitmap.width, preview.height / bitmap.height);
  ctx.clearRect(0, 0, preview.width, preview.height);
  ctx.imageSmoothingEnabled = scale < 1;
  ctx.drawImage(bitmap, 0, 0, bitmap.width * scale, bitmap.height * scale);
}

function showTop5(m) {
  state.probabilities = Array.from(m.probabilities);
  state.pixels = Array.from(m.pixels.data);
  state.top = m.top;
  const rows = m.top.map(({ label, probability }) => {
    const tr = document.createElement('tr');
    const bar = document.createElement('div');
    bar.className = 'bar';
    bar.style.width = `${(probability * 12).toFixed(2)}rem`;
    for (const cell of [label, `${(probability * 100).toFixed(2)} %`, bar]) {
      const td = document.createElement('td');
      td.append(cell);
      tr.append(td);
    }
    return tr;
  });
  $('top5').tBodies[0].replaceChildren(...rows);
  state.classifiedWith = m.how;
  $('classified-with').textContent = `Classified in ${m.ms.toFixed(1)} ms: ${m.how}.`;
}

// ---- training

$('train-form').addEventListener('submit', (e) => {
  e.preventDefault();
  clearError();
  const options = {
    samples: Number($('samples').value),
    batchSize: Number($('batch-size').value),
    epochs: Number($('epochs').value),
    lr: Number($('lr').value),
    seed: 0,
  };
  state.losses = [];
  state.training = true;
  state.trained = null;
  drawCurve();
  setTraining(true);
  $('train-status').textContent = 'Fetching Fashion-MNIST and building the model…';
  worker.postMessage({ type: 'train', ...options });
});
$('train-stop').addEventListener('click', () => worker.postMessage({ type: 'stop' }));
$('download').addEventListener('click', () => worker.postMessage({ type: 'download' }));

function setTraining(on) {
  $('train-start').disabled = on;
  $('train-stop').disabled = !on;
  $('download').disabled = on || state.model === null;
}

function showProgress(m) {
  state.losses.push(m.loss);
  $('progress').value = m.step / m.steps;
  $('train-status').textContent =
    `Epoch ${m.epoch}/${m.epochs}, step ${m.step}/${m.steps}: loss ${m.loss.toFixed(4)}, ` +
    `batch accuracy ${(m.accuracy * 100).toFixed(1)} %, ${m.imagesPerSecond.toFixed(1)} images/s`;
  drawCurve();
}

/** The loss by step as an SVG polyline, scaled to the largest loss so far. */
function drawCurve() {
  const losses = state.losses;
  const max = Math.max(1e-6, ...losses);
  const dx = 600 / Math.max(1, losses.length - 1);
  const points = losses.map((l, i) => `${(i * dx).toFixed(1)},${(195 - (l / max) * 170).toFixed(1)}`);
  $('curve-loss').setAttribute('points', points.join(' '));
  $('curve-label').textContent = losses.length ? `loss (max ${max.toFixed(3)}, last ${losses.at(-1).toFixed(3)})` : 'loss';
}

function saveFile(blob, name) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}
