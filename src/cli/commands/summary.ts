import { noGrad } from '../../core/engine.js';
import { buildModel } from '../../models/registry.js';
import { parse } from '../args.js';
import { MODEL_FLAGS, MODEL_FLAGS_HELP, modelFromFlags } from '../model-flags.js';

export const SUMMARY_HELP = `Usage: xception summary [options]

Prints the model's layers as Keras's model.summary() does: name, type, output shape,
parameters, and the totals (trainable and not). With --json, one object:
{name, totalParams, trainableParams, nonTrainableParams,
 layers: [{name, type, outputShape, params, connectedTo}]} (outputShape without the batch).

  --json                          machine-readable output
  -h, --help                      this help

${MODEL_FLAGS_HELP}

Examples:
  xception summary
  xception summary --no-top --json
  xception summary --stem small --input-shape 28,28,1 --classes 10 --width 0.25
  xception summary --model inception_v3
`;

export async function summaryCommand(argv: string[], out: (s: string) => void): Promise<number> {
  const p = parse('summary', argv, { ...MODEL_FLAGS, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } });
  if (p.values['help']) {
    out(SUMMARY_HELP);
    return 0;
  }
  const choice = modelFromFlags(p);
  const model = noGrad(() => buildModel(choice.name, choice.options));
  out(p.values['json'] ? `${JSON.stringify(model.summary())}\n` : `${model.summaryText()}\n`);
  model.dispose();
  return 0;
}
