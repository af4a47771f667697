#!/usr/bin/env node
/**
 * Runs every fuzz test (dist/test/**\/*fuzz*.test.js) with a chosen case count and seed:
 *
 *   npm run fuzz -- --cases 20000 --seed 7
 *
 * Without --seed a fresh seed is drawn and printed, so each run explores new cases and a failing
 * one can be replayed. --cases overrides every fuzzer's count (XCEPTION_FUZZ_CASES); the seed is
 * passed as XCEPTION_FUZZ_SEED (see test/helpers/fuzz.ts).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { cases: { type: 'string' }, seed: { type: 'string' } } });
const integer = (name, text, min) => {
  const n = Number(text);
  if (text === '' || !Number.isSafeInteger(n) || n < min) {
    console.error(`--${name} must be an integer ≥ ${min}, got '${text}'`);
    process.exit(2);
  }
  return n;
};
const seed = values.seed !== undefined ? integer('seed', values.seed, 0) : Math.floor(Math.random() * 2 ** 31);
const env = { ...process.env, XCEPTION_FUZZ_SEED: String(seed) };
if (values.cases !== undefined) env.XCEPTION_FUZZ_CASES = String(integer('cases', values.cases, 1));

function fuzzFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return fuzzFiles(path);
    return /fuzz.*\.test\.js$/.test(e.name) ? [path] : [];
  });
}

const files = fuzzFiles('dist/test').sort();
console.log(
  `fuzzing with XCEPTION_FUZZ_SEED=${seed}${env.XCEPTION_FUZZ_CASES ? ` XCEPTION_FUZZ_CASES=${env.XCEPTION_FUZZ_CASES}` : ''}: ${files.map((f) => relative('dist/test', f)).join(', ')}`,
);
const run = spawnSync(process.execPath, ['--test', ...files], { env, stdio: 'inherit' });
console.log(`fuzz seed was ${seed}`);
process.exit(run.status ?? 1);
