/**
 * Runs Keras H5 parsing in a worker thread, so that a file which makes the WebAssembly HDF5
 * library loop or abort costs a terminated worker and a WeightFileError instead of the process.
 * One worker serves requests one at a time; it is replaced after a timeout or a crash and does
 * not keep the process alive while idle.
 */
import { Worker } from 'node:worker_threads';
import { WeightFileError } from './errors.js';
import type { KerasH5Contents } from './keras-h5.js';

interface Reply {
  id: number;
  contents?: KerasH5Contents;
  error?: { weightFile: boolean; file: string; problem: string };
}

interface Pending {
  worker: Worker;
  name: string;
  resolve: (contents: KerasH5Contents) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

let worker: Worker | null = null;
const pending = new Map<number, Pending>();
let nextId = 0;
let queue: Promise<unknown> = Promise.resolve();

function failAll(w: Worker, problem: (name: string) => string): void {
  if (worker === w) worker = null;
  for (const [id, p] of pending) {
    if (p.worker !== w) continue; // a request already moved on to a replacement worker
    clearTimeout(p.timer);
    pending.delete(id);
    p.reject(new WeightFileError(p.name, problem(p.name)));
  }
}

function getWorker(): Worker {
  if (worker) return worker;
  const w = new Worker(new URL('./h5-worker.js', import.meta.url));
  w.on('message', (reply: Reply) => {
    const p = pending.get(reply.id);
    if (!p) return;
    pending.delete(reply.id);
    clearTimeout(p.timer);
    if (reply.contents) p.resolve(reply.contents);
    else p.reject(new WeightFileError(reply.error?.file ?? p.name, reply.error?.problem ?? 'the HDF5 reader failed'));
  });
  w.on('error', (e) => failAll(w, () => `the HDF5 reader crashed (${e.message.split('\n')[0]}); the file is corrupt`));
  w.on('exit', (code) => failAll(w, () => `the HDF5 reader stopped (exit code ${code})`));
  // After the listeners: attaching a 'message' listener refs the worker's port again.
  w.unref();
  worker = w;
  return w;
}

export function parseKerasH5Isolated(
  bytes: Uint8Array,
  name: string,
  timeoutMs: number,
  transferBytes = false,
  attributes: readonly string[] = [],
): Promise<KerasH5Contents> {
  const run = () =>
    new Promise<KerasH5Contents>((resolve, reject) => {
      const w = getWorker();
      const id = ++nextId;
      const timer = setTimeout(() => {
        pending.delete(id);
        if (worker === w) worker = null;
        w.removeAllListeners();
        w.on('error', () => undefined);
        void w.terminate();
        reject(new WeightFileError(name, `reading took longer than ${timeoutMs} ms and was stopped (corrupt file, or raise timeoutMs)`));
      }, timeoutMs);
      pending.set(id, { worker: w, name, resolve, reject, timer });
      w.postMessage({ id, bytes, name, attributes: [...attributes] }, transferBytes ? [bytes.buffer as ArrayBuffer] : []);
    });
  const result = queue.then(run, run);
  queue = result.catch(() => undefined);
  return result;
}
