/**
 * The browser half of `npm run bench:wasm` (src/bench/scripts/wasm-peers.ts): times Xception batch
 * 1 on our wasm backend, onnxruntime-web and tfjs-backend-wasm in this page, interleaved, on the
 * weights and ONNX export the Node script wrote to /bench-data/. Query: size, rounds, perRound, threads.
 * Sets window.benchResult ({userAgent, isolated, results}) or window.benchError.
 */
import { modelFromSafetensors, namedWeightsOf } from '../dist/src/browser.js';
import {
  benchInput,
  ortContestant,
  tfjsContestant,
  tfjsXception,
  timeInterleaved,
  timingTable,
} from '../dist/src/bench/wasm-peers-core.js';

const q = new URLSearchParams(location.search);
const num = (k, d) => Number(q.get(k) ?? d);
const [size, rounds, perRound, threads] = [num('size', 299), num('rounds', 5), num('perRound', 2), num('threads', 2)];

async function bytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

/** A request to the bench worker and its one reply (an 'error' reply rejects). */
function ask(worker, message, transfer = []) {
  return new Promise((resolve, reject) => {
    worker.onmessage = ({ data }) => (data.type === 'error' ? reject(new Error(`bench worker: ${data.message}`)) : resolve(data));
    worker.onerror = (e) => reject(new Error(`bench worker: ${e.message}`));
    worker.postMessage(message, transfer);
  });
}

/** Ours: the compiled plan on the wasm backend, threaded, in a Worker (web/bench-worker.js). */
async function ours(nhwc) {
  const weights = await bytes('/bench-data/model.safetensors');
  const worker = new Worker(new URL('./bench-worker.js', import.meta.url), { type: 'module' });
  const ready = await ask(worker, { type: 'init', weights, input: nhwc, size });
  const run = async () => (await ask(worker, { type: 'run' })).data;
  // The tfjs peer reads the same weights from this copy of the model (on the page's own backend).
  const { model } = modelFromSafetensors(weights, 'bench');
  return { contestant: { name: 'ours, wasm', note: ready.note, run }, model };
}

async function main() {
  const { nhwc, nchw } = benchInput(size);
  const { contestant, model } = await ours(nhwc);
  const ort = await import('/ort/ort.wasm.min.mjs');
  ort.env.wasm.wasmPaths = '/ort/';
  const ortPeer = await ortContestant(ort, await bytes('/bench-data/model.onnx'), nchw, size, threads);
  const tf = globalThis.tf;
  tf.wasm.setWasmPaths('/tfjs/tfjs-backend-wasm/dist/');
  tf.wasm.setThreadsCount(threads);
  // tfjs-backend-wasm 4.22 caps its XNNPACK pool at navigator.hardwareConcurrency / 2 (its
  // backend.cc, init_with_threads_count: min(…, num_cores) with num_cores =
  // emscripten_num_logical_cores() / 2), so on a 2-core machine it runs 1 thread whatever
  // setThreadsCount says. Report 2·threads cores while it initializes (the only time it reads
  // them), so it gets the `threads` the other contestants get.
  const cores = Object.getOwnPropertyDescriptor(Navigator.prototype, 'hardwareConcurrency');
  Object.defineProperty(Navigator.prototype, 'hardwareConcurrency', { configurable: true, get: () => 2 * threads });
  try {
    if (!(await tf.setBackend('wasm'))) throw new Error('tfjs-backend-wasm did not initialize');
  } finally {
    Object.defineProperty(Navigator.prototype, 'hardwareConcurrency', cores);
  }
  const weights = new Map(namedWeightsOf(model).map((w) => [w.name, w]));
  const tm = tfjsXception(tf, size, 1000, weights);
  const note = `wasm SIMD, ${tf.wasm.getThreadsCount()} threads (its own cap: half the cores), bench-only tfjs-layers Xception`;
  const results = await timeInterleaved([contestant, ortPeer, tfjsContestant(tf, tm, nhwc, size, note)], rounds, perRound);
  document.getElementById('out').textContent = timingTable(results);
  window.benchResult = { userAgent: navigator.userAgent, isolated: self.crossOriginIsolated === true, results };
}

main().catch((e) => {
  window.benchError = e instanceof Error ? `${e.message}\n${e.stack}` : String(e);
  document.getElementById('out').textContent = window.benchError;
});
