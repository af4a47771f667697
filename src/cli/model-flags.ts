/** The flags that pick a model and its options, shared by summary, train, bench and export. */
import { OptionError } from '../core/errors.js';
import type { XceptionOptions } from '../models/xception/xception.js';
import { choiceFlag, intFlag, numberFlag, shapeFlag, type FlagSpec, type Parsed } from './args.js';

export const MODEL_FLAGS: FlagSpec = {
  model: { type: 'string' },
  'input-shape': { type: 'string' },
  classes: { type: 'string' },
  'no-top': { type: 'boolean' },
  pooling: { type: 'string' },
  'classifier-activation': { type: 'string' },
  'no-residual': { type: 'boolean' },
  'intermediate-activation': { type: 'string' },
  order: { type: 'string' },
  segments: { type: 'string' },
  'middle-blocks': { type: 'string' },
  width: { type: 'string' },
  'channel-multiple': { type: 'string' },
  dropout: { type: 'string' },
  'bn-momentum': { type: 'string' },
  stem: { type: 'string' },
  seed: { type: 'string' },
};

/** The defaults the help states; they differ by command (train's depend on the data). */
export interface ModelHelpDefaults {
  inputShape: string;
  classes: string;
  stem: string;
  width: string;
  middleBlocks: string;
  /** False where the command lists --seed itself (train: it seeds more than the weights). */
  seedFlag: boolean;
}

/** Keras's defaults: summary, predict and export build the model as Keras does. */
export const KERAS_MODEL_HELP_DEFAULTS: ModelHelpDefaults = {
  inputShape: 'default 299,299,3; 32,32,3 with --stem small',
  classes: 'default 1000',
  stem: 'default imagenet',
  width: 'default 1',
  middleBlocks: 'default 8',
  seedFlag: true,
};

export function modelFlagsHelp(d: ModelHelpDefaults = KERAS_MODEL_HELP_DEFAULTS): string {
  return `Model options:
  --model NAME                    xception (default) or inception_v3 (Keras InceptionV3, the
                                  paper's baseline; the flags marked 'xception only' do not apply)
  --input-shape H,W,C             input size (${d.inputShape})
  --classes N                     classifier outputs (${d.classes})
  --no-top                        drop the classifier (global pooling + Dense)
  --pooling avg|max               with --no-top: global pooling of the feature map
  --classifier-activation softmax|linear
  --stem imagenet|small           'small' keeps small inputs (28×28, 32×32) viable: xception
                                  keeps the size through block1; inception_v3 runs its stem
                                  convs at stride 1 'same' with one 'same' max pool (32 → 16)
                                  (${d.stem})
  --width X                       width multiplier on every channel count (${d.width})
  --channel-multiple N            round channel counts to multiples of N (xception; default 1)
  --middle-blocks N               middle-flow blocks (xception only, ${d.middleBlocks})
  --dropout R                     dropout before the classifier (default 0)
  --bn-momentum M                 batch-norm moving-average momentum (default Keras's 0.99;
                                  0.9 suits runs of a few thousand steps)
${d.seedFlag ? '  --seed S                        weight initialization seed (default 0)\n' : ''}Research switches (xception only; defaults are the paper's Xception):
  --no-residual                   remove the residual connections (paper figure 9)
  --intermediate-activation none|relu|elu
                                  non-linearity between depthwise and pointwise (figure 10)
  --order depthwise-first|pointwise-first
                                  pointwise-first is the "extreme Inception" order
  --segments N|depthwise          channel segments of each spatial convolution:
                                  1 = regular convolution … depthwise = one per channel`;
}

export const MODEL_FLAGS_HELP = modelFlagsHelp();

/** The flag that sets each model option (for messages that must name the flag). */
export const MODEL_OPTION_FLAGS: Record<string, string> = {
  inputShape: 'input-shape', classes: 'classes', includeTop: 'no-top', pooling: 'pooling',
  classifierActivation: 'classifier-activation', residual: 'no-residual', intermediateActivation: 'intermediate-activation',
  order: 'order', segments: 'segments', middleBlocks: 'middle-blocks', width: 'width', channelMultiple: 'channel-multiple',
  dropout: 'dropout', bnMomentum: 'bn-momentum', stem: 'stem', seed: 'seed',
};

/** Flags that only some models accept; any other model gets a clear error naming the flag. */
const MODEL_SPECIFIC_FLAGS: Record<string, readonly string[]> = {
  'no-residual': ['xception'],
  'intermediate-activation': ['xception'],
  order: ['xception'],
  segments: ['xception'],
  'middle-blocks': ['xception'],
  'channel-multiple': ['xception'],
};

export interface ModelChoice {
  name: string;
  options: Record<string, unknown>;
}

export function modelFromFlags(p: Parsed, defaults: Partial<XceptionOptions> = {}, defaultName = 'xception'): ModelChoice {
  const v = p.values;
  const name = (v['model'] as string | undefined) ?? defaultName;
  for (const [flag, models] of Object.entries(MODEL_SPECIFIC_FLAGS)) {
    if (v[flag] !== undefined && !models.includes(name)) {
      throw new OptionError(`--${flag} applies only to --model ${models.join(' or ')}, not to '${name}'`);
    }
  }
  const o: Record<string, unknown> = { ...defaults };
  const set = (k: string, val: unknown) => {
    if (val !== undefined) o[k] = val;
  };
  set('inputShape', shapeFlag('input-shape', v['input-shape']));
  set('classes', intFlag('classes', v['classes']));
  if (v['no-top']) o['includeTop'] = false;
  set('pooling', choiceFlag('pooling', v['pooling'], ['avg', 'max'] as const));
  if (o['pooling'] !== undefined && o['includeTop'] !== false) throw new OptionError('--pooling applies only with --no-top');
  set('classifierActivation', choiceFlag('classifier-activation', v['classifier-activation'], ['softmax', 'linear'] as const));
  if (v['no-residual']) o['residual'] = false;
  set('intermediateActivation', choiceFlag('intermediate-activation', v['intermediate-activation'], ['none', 'relu', 'elu'] as const));
  set('order', choiceFlag('order', v['order'], ['depthwise-first', 'pointwise-first'] as const));
  if (v['segments'] !== undefined) o['segments'] = v['segments'] === 'depthwise' ? 'depthwise' : intFlag('segments', v['segments']);
  set('middleBlocks', intFlag('middle-blocks', v['middle-blocks'], 0));
  set('width', numberFlag('width', v['width'], 0.01, 4));
  set('channelMultiple', intFlag('channel-multiple', v['channel-multiple']));
  set('dropout', numberFlag('dropout', v['dropout'], 0, 0.99));
  set('bnMomentum', numberFlag('bn-momentum', v['bn-momentum'], 0, 0.9999));
  set('stem', choiceFlag('stem', v['stem'], ['imagenet', 'small'] as const));
  set('seed', intFlag('seed', v['seed'], 0));
  return { name, options: o };
}
