/** The pool's worker script for the browser (a module Web Worker): its init arrives as the first message. */
import { runWorker, type WorkerInit } from './threads.js';

const scope = globalThis as unknown as { onmessage: ((e: { data: WorkerInit }) => void) | null; close(): void };
scope.onmessage = (e) => {
  scope.onmessage = null;
  runWorker(e.data);
  scope.close();
};
