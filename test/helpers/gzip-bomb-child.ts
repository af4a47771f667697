/**
 * Child process of test/data/idx-gzip-bomb.test.ts: reads the IDX file named by argv[2] and
 * prints, as JSON, how it was refused (error class and message), how long that took, and the
 * process's peak resident memory — measured here, away from the test runner's own memory.
 */
import { readIdxFile } from '../../src/data/idx.js';

// `node --test dist/test/` also runs this file, with no argument: nothing to do then.
if (process.argv[2] === undefined) process.exit(0);
const start = Date.now();
let outcome: { error?: string; message?: string; shape?: number[] };
try {
  const arr = await readIdxFile(process.argv[2]!);
  outcome = { shape: arr.shape };
} catch (e) {
  outcome = { error: (e as Error).constructor.name, message: (e as Error).message };
}
const peakRssBytes = process.resourceUsage().maxRSS * 1024;
process.stdout.write(`${JSON.stringify({ ...outcome, ms: Date.now() - start, peakRssBytes })}\n`);
