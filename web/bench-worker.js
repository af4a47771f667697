/**
 * The bench page's own contestant, in a Worker: there the wasm backend may run its threads (a
 * page's main thread may not block on Atomics), and the network runs as a compiled plan, as the
 * page classifies. Messages in: init {weights, input, size}, run. Out: ready {note}, output {data}, error.
 */
import { compileInference, modelFromSafetensors, useBrowserBackend } from '../dist/src/browser.js';

let plan = null;
let input = null;

self.onmessage = async ({ data }) => {
  try {
    if (data.type === 'init') {
      const choice = await useBrowserBackend({ prefer: 'wasm' });
      const { model } = modelFromSafetensors(data.weights, 'bench');
      plan = compileInference(model, { batch: 1, inputShape: [data.size, data.size, 3] });
      input = data.input;
      const threads = choice.backend.threads(); // prefer 'wasm': the wasm backend or an error
      const how = `compiled plan, ${choice.backend.simd()} SIMD, ${threads} thread${threads === 1 ? '' : 's'}, in a Worker`;
      self.postMessage({ type: 'ready', note: how });
    } else if (data.type === 'run') {
      self.postMessage({ type: 'output', data: plan.runData(input) });
    }
  } catch (e) {
    self.postMessage({ type: 'error', message: e instanceof Error ? e.message : String(e) });
  }
};
