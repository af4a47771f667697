/**
 * A safetensors file's model_config is untrusted: 500 mutated records (hostile numbers, wrong
 * types, unknown and reserved keys, other models, broken JSON) go through openWeights, buildModel
 * and loadInto. Each is read or refused with a typed error, and the process's peak memory stays
 * within the file's size + 256 MiB: no record makes us build a model the file cannot fill.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import '../../src/backends/index.js';
import { OptionError, ShapeError } from '../../src/core/errors.js';
import type { Random } from '../../src/core/random.js';
import { WeightFileError } from '../../src/io/errors.js';
import { modelRecordOf } from '../../src/io/model-record.js';
import { saveWeights } from '../../src/io/model-weights.js';
import { readSafetensorsFileSync, writeSafetensorsFileSync } from '../../src/io/safetensors.js';
import { openWeights } from '../../src/io/weights-source.js';
import { buildModel } from '../../src/models/registry.js';
import { makeTempDir } from '../data/fixtures.js';
import { fuzzCaseCount, fuzzTimeout, runFuzz } from '../helpers/fuzz.js';

const HOSTILE: unknown[] = [
  1e9,
  -1,
  0,
  0.5,
  1e308,
  2 ** 53,
  'x',
  '',
  null,
  true,
  [],
  {},
  [1e5, 1e5, 3],
  [4096, 4096, 64],
  64,
  65,
  100_000,
  4,
  8192,
  'depthwise',
  'relu',
  'small',
  'imagenet',
  'avg',
];
const KEYS = ['classes', 'middleBlocks', 'width', 'inputShape', 'segments', 'channelMultiple', 'stem', 'includeTop', 'pooling', 'dropout'];
const pick = <T>(rng: Random, list: readonly T[]): T => list[rng.int(list.length)]!;

/** One to three edits of the record's JSON (the model's name beside its options): values, keys, the text. */
function mutateConfig(rng: Random, config: Record<string, unknown>): string {
  const c: Record<string, unknown> = JSON.parse(JSON.stringify(config));
  for (let edits = 1 + rng.int(3); edits > 0; edits--) {
    const r = rng.uniform();
    if (r < 0.15)
      c[pick(rng, ['width', 'classes', 'middleBlocks'])] = pick(rng, [4, 100_000, 64]); // as large as the caps allow
    else if (r < 0.7) c[pick(rng, KEYS)] = pick(rng, HOSTILE);
    else if (r < 0.8) delete c[pick(rng, Object.keys(c))];
    else if (r < 0.9) Object.defineProperty(c, pick(rng, ['__proto__', 'constructor', 'zzz']), { value: 1, enumerable: true });
    else c['model'] = pick(rng, ['inception_v3', 'nope', 7]);
  }
  const text = JSON.stringify(c);
  return rng.uniform() < 0.05 ? text.slice(0, rng.int(text.length)) : text;
}

test('500 mutated model_configs: typed errors only, peak RSS within file + 256 MiB', { timeout: fuzzTimeout(500, 300_000) }, async (t) => {
  const tmp = makeTempDir('model-config-fuzz');
  try {
    const model = buildModel('xception', { stem: 'small', inputShape: [16, 16, 3], classes: 4, width: 0.125, middleBlocks: 1 });
    const good = path.join(tmp.dir, 'good.safetensors');
    await saveWeights(model, good, 'safetensors', modelRecordOf(model)!);
    model.dispose();
    const { weights, metadata } = readSafetensorsFileSync(good);
    const config = JSON.parse(metadata['model_config']!) as Record<string, unknown>;
    const file = path.join(tmp.dir, 'case.safetensors');
    const rssBefore = process.resourceUsage().maxRSS * 1024;
    const tally = await runFuzz(t, {
      name: 'model_config',
      seedOffset: 91,
      cases: fuzzCaseCount(500),
      typed: [WeightFileError, OptionError, ShapeError],
      run: async (rng) => {
        writeSafetensorsFileSync(file, weights, { ...metadata, model_config: mutateConfig(rng, config) });
        const source = await openWeights(file);
        const built = source.buildModel();
        try {
          await source.loadInto(built);
        } finally {
          built.dispose();
        }
      },
    });
    assert.ok(tally.succeeded > 0 && tally.rejected.size > 0, 'both accepted and refused records must occur');
    const grown = process.resourceUsage().maxRSS * 1024 - rssBefore;
    const limit = fs.statSync(good).size + 256 * 2 ** 20;
    t.diagnostic(`peak RSS grew by ${(grown / 2 ** 20).toFixed(1)} MiB (limit ${(limit / 2 ** 20).toFixed(1)} MiB)`);
    assert.ok(grown <= limit, `peak RSS grew by ${grown} bytes, over ${limit}`);
  } finally {
    tmp.cleanup();
  }
});
