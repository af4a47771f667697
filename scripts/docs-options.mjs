// Rewrites README's model-options block from the options schema (run via `npm run docs:options`,
// which compiles first).
import { readFileSync, writeFileSync } from 'node:fs';
import { withOptionsTable } from '../dist/src/models/options-docs.js';

const readme = new URL('../README.md', import.meta.url);
const before = readFileSync(readme, 'utf8');
const after = withOptionsTable(before);
writeFileSync(readme, after);
console.log(after === before ? 'README options table already up to date' : 'README options table rewritten from the schema');
