#!/usr/bin/env node
/**
 * Walks the ESM import graph from the built browser entry (dist/src/browser.js, or a file given as
 * the first argument) and fails when anything on it is not a relative module: node:* built-ins,
 * sharp, h5wasm or any other bare package a browser could not load without a bundler.
 * Usage: node scripts/browser-imports.mjs [entry.js]   (exit 1 and a list of chains on a leak)
 */
import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const IMPORT_RE = /(?:^|[;\s])(?:import|export)\s*(?:[\w*${}\s,]+?\s*from\s*)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm;

/** Every specifier a module imports (static, re-exports and literal dynamic imports). */
export function importsOf(source) {
  const specs = [];
  for (const m of source.matchAll(IMPORT_RE)) specs.push(m[1] ?? m[2]);
  return specs;
}

/** Returns the bad imports found from `entry`, each with the chain of files that leads to it. */
export function findNonBrowserImports(entry) {
  const bad = [];
  const parent = new Map([[entry, null]]);
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.shift();
    for (const spec of importsOf(readFileSync(file, 'utf8'))) {
      if (!spec.startsWith('.')) {
        bad.push({ spec, chain: chainTo(parent, file) });
        continue;
      }
      const next = resolve(dirname(file), spec);
      if (!parent.has(next)) {
        parent.set(next, file);
        queue.push(next);
      }
    }
  }
  return { bad, modules: parent.size, files: [...parent.keys()] };
}

function chainTo(parent, file) {
  const chain = [];
  for (let f = file; f; f = parent.get(f)) chain.unshift(relative(root, f));
  return chain;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const entry = resolve(process.argv[2] ?? `${root}/dist/src/browser.js`);
  const { bad, modules } = findNonBrowserImports(entry);
  for (const b of bad) console.error(`${b.spec}  <-  ${b.chain.join(' <- ')}`);
  console.log(`${modules} modules from ${relative(root, entry)}; ${bad.length} non-browser import(s)`);
  process.exit(bad.length > 0 ? 1 : 0);
}
