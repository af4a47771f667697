/** The pool's worker script for Node (worker_threads): its init arrives as workerData. */
import { workerData } from 'node:worker_threads';
import { runWorker, type WorkerInit } from './threads.js';

runWorker(workerData as WorkerInit);
