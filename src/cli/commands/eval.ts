import { setBackend } from '../../core/engine.js';
import { OptionError } from '../../core/errors.js';
import { DataLoader } from '../../data/loader.js';
import { loadDataset } from '../../data/spec.js';
import { getModelEntry } from '../../models/registry.js';
import { evaluate } from '../../train/metrics.js';
import { loadRun, MAX_BATCH_SIZE } from '../../train/trainer.js';
import { choiceFlag, intFlag, parse, backendFlag } from '../args.js';

export const EVAL_HELP = `Usage: xception eval --checkpoint DIR [options]

Evaluates a trained run (the folder written by 'xception train') on a test set and prints
top-1, top-5 accuracy and the mean cross-entropy loss. Uses the averaged (EMA) weights when
the run kept them.

  --checkpoint DIR        run folder (holds checkpoint.safetensors)
  --dataset SPEC          default: the run's dataset (test split)
  --batch-size B          (default 256)
  --limit N               evaluate only the first N test images
  --no-ema                use the live weights even if the run kept an average
  --backend NAME          native | reference
  --json                  one JSON object: {testTop1, testTop5, testLoss}
  -h, --help
`;

export async function evalCommand(argv: string[], out: (s: string) => void): Promise<number> {
  const p = parse('eval', argv, {
    checkpoint: { type: 'string' }, dataset: { type: 'string' }, 'batch-size': { type: 'string' }, limit: { type: 'string' },
    'no-ema': { type: 'boolean' }, backend: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  });
  const v = p.values;
  if (v['help']) {
    out(EVAL_HELP);
    return 0;
  }
  const dir = v['checkpoint'] as string | undefined;
  if (!dir) throw new OptionError('eval needs --checkpoint DIR (a run folder written by xception train)');
  const backend = backendFlag(v['backend']);
  if (backend) setBackend(backend);
  const { model, config, state } = loadRun(dir, { useEma: !v['no-ema'] });
  try {
    const ds = await loadDataset((v['dataset'] as string | undefined) ?? config.dataset, 'test');
    const limit = intFlag('limit', v['limit']);
    const indices = limit ? Int32Array.from({ length: Math.min(limit, ds.count) }, (_, i) => i) : undefined;
    const [h, , c] = model.inputShape as [number, number, number];
    const classes = model.outputShape[0]!;
    if (ds.classes !== classes) throw new OptionError(`the model has ${classes} outputs, the dataset ${ds.classes} classes`);
    const loader = new DataLoader(ds, {
      batchSize: intFlag('batch-size', v['batch-size'], 1, MAX_BATCH_SIZE) ?? 256, shuffle: false,
      preprocessing: getModelEntry(state.model.name).preprocessing, size: h, channels: c,
      ...(indices ? { indices } : {}),
    });
    const r = await evaluate(model, loader.epochBatches(), classes);
    if (v['json']) out(JSON.stringify({ testTop1: r.top1, testTop5: r.top5, testLoss: r.loss }) + '\n');
    else out(`${r.count} images: top-1 ${(100 * r.top1).toFixed(2)}%  top-5 ${(100 * r.top5).toFixed(2)}%  loss ${r.loss.toFixed(4)}\n`);
    return 0;
  } finally {
    model.dispose();
  }
}
