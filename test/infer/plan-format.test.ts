/**
 * The plan format is defined twice, once per language: src/infer/plan-format.ts and the enums of
 * native/plan.h. These tests read plan.h as text and check that both say the same.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  CONV_GEOMETRY,
  ELTWISE_ALG,
  HEADER,
  OP,
  PLAN_FORMAT_VERSION,
  POOL_ALG,
  POOL_WINDOW,
  POST_KIND,
  PRECISION,
  VALUE_QUANT,
} from '../../src/infer/plan-format.js';

// From dist/test/infer/ (compiled) to the repository's native/plan.h.
const header = readFileSync(fileURLToPath(new URL('../../../native/plan.h', import.meta.url)), 'utf8');

/** The members of `enum class name { … }` in order, with their values (implicit ones counted on). */
function enumMembers(name: string): Array<[string, number]> {
  const m = new RegExp(`enum class ${name}\\s*(?::\\s*\\w+\\s*)?\\{([^}]*)\\}`).exec(header);
  assert.ok(m, `native/plan.h has no 'enum class ${name}'`);
  let next = 0;
  return m[1]!
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => {
      const [member, value] = s.split('=').map((x) => x.trim());
      next = value === undefined ? next : Number(value);
      return [member!, next++] as [string, number];
    });
}

/** The strings of `kName[] = { "…", … }`. */
function stringArray(name: string): string[] {
  const m = new RegExp(`${name}\\[\\]\\s*=\\s*\\{([^}]*)\\}`).exec(header);
  assert.ok(m, `native/plan.h has no array ${name}`);
  return [...m[1]!.matchAll(/"([^"]*)"/g)].map((x) => x[1]!);
}

const pascal = (s: string) => s[0]!.toUpperCase() + s.slice(1);
/** A TS code table as C++ enum members: keys PascalCased, with their numbers. */
const asMembers = (table: Record<string, number>) => Object.entries(table).map(([k, v]) => [pascal(k), v] as [string, number]);

test('step kinds, post-op kinds and algorithm codes are the same numbers in TypeScript and native/plan.h', () => {
  assert.deepEqual(enumMembers('Op'), asMembers(OP));
  assert.deepEqual(enumMembers('PostKind'), asMembers(POST_KIND));
  assert.deepEqual(enumMembers('EltwiseAlg'), asMembers(ELTWISE_ALG));
  assert.deepEqual(enumMembers('PoolAlg'), asMembers(POOL_ALG));
  assert.match(header, new RegExp(`kPlanFormatVersion = ${PLAN_FORMAT_VERSION};`));
});

test('header, convolution geometry and pooling window fields come in the same order in TypeScript and native/plan.h', () => {
  assert.deepEqual(
    enumMembers('HeaderField').map(([m]) => m),
    [...HEADER],
  );
  assert.deepEqual(
    enumMembers('ConvField').map(([m]) => m),
    [...CONV_GEOMETRY, 'count'],
  );
  assert.deepEqual(stringArray('kConvFieldNames'), [...CONV_GEOMETRY]);
  assert.deepEqual(
    enumMembers('PoolField').map(([m]) => m),
    [...POOL_WINDOW, 'count'],
  );
  assert.deepEqual(stringArray('kPoolFieldNames'), [...POOL_WINDOW]);
});

test('precision codes and the int8 value table fields are the same in TypeScript and native/plan.h', () => {
  assert.deepEqual(enumMembers('Precision'), asMembers(PRECISION));
  // C++ spells the member `unsigned_` (a keyword otherwise).
  assert.deepEqual(
    enumMembers('ValueQuantField').map(([m]) => m.replace(/_$/, '')),
    [...VALUE_QUANT, 'count'],
  );
});
