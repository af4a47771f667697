/** Worker-thread entry for h5-isolated.ts: parses Keras H5 bytes and sends the layers (and asked-for attributes) back. */
import { parentPort } from 'node:worker_threads';
import { WeightFileError } from './errors.js';
import { parseKerasH5Contents } from './keras-h5.js';

const port = parentPort;
if (port) {
  port.on('message', (msg: { id: number; bytes: Uint8Array; name: string; attributes: string[] }) => {
    parseKerasH5Contents(msg.bytes, msg.name, msg.attributes).then(
      (contents) => {
        // Each weight owns its buffer, so they can be moved rather than copied.
        port.postMessage(
          { id: msg.id, contents },
          contents.layers.flatMap((l) => l.weights.map((w) => w.data.buffer as ArrayBuffer)),
        );
      },
      (e: unknown) => {
        const weightFile = e instanceof WeightFileError;
        port.postMessage({
          id: msg.id,
          error: { weightFile, file: weightFile ? e.file : msg.name, problem: weightFile ? e.problem : String(e) },
        });
      },
    );
  });
}
