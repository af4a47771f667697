#!/usr/bin/env node
// Builds the optional oneDNN addon (build/Release/xception_native.node) with node-gyp.
//
// `npm install` / `npm ci` run this as the package's install script. A failed build must not fail
// the install: the library then runs on its pure TypeScript backend. So by default this script
// always exits 0 and prints exactly one line saying what happened; the full compiler output goes
// to build/native-build.log. `--strict` (used by `npm run build:native`) exits 1 on failure and
// prints the log tail, for developers who want to see the error.
//
// XCEPTION_SKIP_NATIVE=1 skips the build entirely.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const strict = process.argv.includes('--strict');
const logPath = path.join(root, 'build', 'native-build.log');
const addonPath = path.join(root, 'build', 'Release', 'xception_native.node');

function finish(ok, line, log) {
  if (log !== undefined) {
    try {
      mkdirSync(path.dirname(logPath), { recursive: true });
      writeFileSync(logPath, log);
    } catch {
      // The log is a convenience; never let it fail the install.
    }
  }
  console.log(`xception: ${line}`);
  if (!ok && strict && log) console.error(log.split('\n').slice(-40).join('\n'));
  process.exit(ok || !strict ? 0 : 1);
}

if (process.env.XCEPTION_SKIP_NATIVE === '1') {
  finish(true, 'native oneDNN backend not built (XCEPTION_SKIP_NATIVE=1); using the TypeScript backend.');
}

// node-gyp: the one npm passes to lifecycle scripts, else npm's bundled copy, else PATH.
function findNodeGyp() {
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && existsSync(fromNpm)) return [process.execPath, fromNpm];
  const bundled = path.join(
    path.dirname(process.execPath),
    '..',
    'lib',
    'node_modules',
    'npm',
    'node_modules',
    'node-gyp',
    'bin',
    'node-gyp.js',
  );
  if (existsSync(bundled)) return [process.execPath, bundled];
  return ['node-gyp'];
}

// Turns the build log into a short reason a user can act on.
function reasonFrom(log) {
  const rules = [
    [/dnnl[\w.]*\.hpp: No such file/, 'oneDNN headers not found (install libdnnl-dev)'],
    [/cannot find -ldnnl|ld: .*-ldnnl/, 'oneDNN library not found (install libdnnl-dev)'],
    [
      /(c\+\+|g\+\+|cc|make): (command )?not found|not found: make|spawn (make|c\+\+|g\+\+) ENOENT|No such file or directory: '[^']*(g\+\+|c\+\+|cc|clang\+\+)'/,
      'no C++ toolchain (install g++ and make)',
    ],
    [/ERR! find Python|Could not find any Python/, 'Python not found (node-gyp needs it)'],
    [/ENOENT.*node-gyp|node-gyp: (command )?not found/, 'node-gyp not found'],
    [/network connectivity|getaddrinfo|ETIMEDOUT|ECONNREFUSED/, 'Node.js headers not available offline (set npm_config_nodedir)'],
  ];
  for (const [re, reason] of rules) if (re.test(log)) return reason;
  const errorLine = log.split('\n').find((l) => /error/i.test(l));
  return errorLine ? errorLine.trim().slice(0, 160) : 'node-gyp failed';
}

const [cmd, ...pre] = findNodeGyp();
const run = spawnSync(cmd, [...pre, 'rebuild'], { cwd: root, encoding: 'utf8', env: process.env });
const log = `${run.stdout ?? ''}\n${run.stderr ?? ''}\n${run.error ? String(run.error) : ''}`;
if (run.error || run.status !== 0) {
  finish(false, `native oneDNN backend not built (${reasonFrom(log)}); using the TypeScript backend. Details: build/native-build.log`, log);
}

// Built; make sure it also loads (libdnnl present at run time, matching ABI).
try {
  const addon = createRequire(import.meta.url)(addonPath);
  const v = addon.version();
  finish(true, `native oneDNN backend built (oneDNN ${v.onednn}).`, log);
} catch (e) {
  finish(
    false,
    `native oneDNN backend built but does not load (${String(e?.message ?? e).split('\n')[0]}); using the TypeScript backend.`,
    log,
  );
}
