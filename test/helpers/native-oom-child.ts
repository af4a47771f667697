/**
 * Child process of test/backends/native-memory-limit.test.ts, run under `ulimit -v`: asks the
 * native backend for the float32 element counts in argv[2..] (each freed at once) and prints, as
 * JSON, what each request gave: 'ok' or the error class, code and message.
 */
import { loadNativeBackend } from '../../src/backends/onednn/index.js';

// `node --test dist/test/` also runs this file, with no argument: nothing to do then.
if (process.argv[2] === undefined) process.exit(0);
const backend = loadNativeBackend();
if (!backend) throw new Error('the native backend is not available');
const outcomes = process.argv.slice(2).map((arg) => {
  try {
    backend.dispose(backend.zeros(Number(arg), 'float32'));
    return { size: Number(arg), ok: true };
  } catch (e) {
    return { size: Number(arg), error: (e as Error).constructor.name, message: (e as Error).message };
  }
});
process.stdout.write(`${JSON.stringify(outcomes)}\n`);
