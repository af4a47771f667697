/** The `xception` command: dispatches to subcommands and turns typed errors into clear messages. */
import '../backends/index.js';
import { XceptionError } from '../core/errors.js';
import { describeSystemError, isSystemError } from '../io/output-paths.js';
import { benchCommand } from './commands/bench.js';
import { evalCommand } from './commands/eval.js';
import { experimentCommand } from './commands/experiment.js';
import { exportCommand } from './commands/export.js';
import { predictCommand } from './commands/predict.js';
import { quantizeCommand } from './commands/quantize.js';
import { serveWebCommand } from './commands/serve-web.js';
import { summaryCommand } from './commands/summary.js';
import { trainCommand } from './commands/train.js';

type Command = (argv: string[], out: (s: string) => void) => Promise<number>;

const COMMANDS: Record<string, { run: Command; about: string }> = {
  train: { run: trainCommand, about: 'train a model (no options: the main job, Xception on Fashion-MNIST)' },
  eval: { run: evalCommand, about: 'evaluate a run or weight file on a dataset (top-1, top-5, loss)' },
  summary: { run: summaryCommand, about: "print a model's layers, shapes and parameter counts" },
  experiment: { run: experimentCommand, about: "the paper's experiments as recipes: list, run NAME, report DIR" },
  predict: { run: predictCommand, about: 'classify image files or folders, with the class names the weights record' },
  export: { run: exportCommand, about: 'write a model as ONNX, or its weights as Keras H5 or safetensors' },
  'serve-web': { run: serveWebCommand, about: 'serve the browser page: classify images, train on Fashion-MNIST in the page' },
  quantize: { run: quantizeCommand, about: 'calibrate int8 quantization on images; write weights + calibration as one file' },
  bench: { run: benchCommand, about: 'images/s and GFLOP/s of Xception inference and training, beside ONNX Runtime (and PyTorch)' },
};

export const MAIN_HELP = `xception — the Xception family of CNNs (Chollet 2017) in TypeScript, fast on a CPU

Usage: xception <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(12)} ${c.about}`)
  .join('\n')}

Run 'xception <command> --help' for a command's options.
Environment: XCEPTION_BACKEND=native|wasm|reference picks the compute backend.
`;

export async function main(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    out(MAIN_HELP);
    return 0;
  }
  if (cmd === '--version') {
    out('0.1.0\n');
    return 0;
  }
  const c = COMMANDS[cmd];
  if (!c) {
    process.stderr.write(`xception: unknown command '${cmd}'\n\n${MAIN_HELP}`);
    return 2;
  }
  try {
    return await c.run(rest, out);
  } catch (e) {
    if (e instanceof XceptionError) {
      process.stderr.write(`xception ${cmd}: error: ${e.message}\n`);
      return 2;
    }
    // A file or folder the command could not read or write: one line, not a stack trace.
    if (isSystemError(e)) {
      process.stderr.write(`xception ${cmd}: error: ${describeSystemError(e)}\n`);
      return 1;
    }
    throw e;
  }
}
