/**
 * Packs the package as `npm publish` would (`npm pack`, which runs `prepack`), installs the tarball
 * into an empty project and uses it there: the install must bring no TensorFlow.js package, and
 * `predict` must still label a 1000-class model with the ImageNet class names it ships.
 * The native addon build at install is skipped (XCEPTION_SKIP_NATIVE=1): it is not what this
 * checks, and it would take minutes. npm reads its cache first, so a warm cache needs no network.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';

/** The environment without what an enclosing `npm test` exported, so the child npm sees only its own folder. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  return { ...env, XCEPTION_SKIP_NATIVE: '1', NO_UPDATE_NOTIFIER: '1' };
}

function run(cmd: string, args: string[], cwd: string): { out: string; err: string } {
  const r = spawnSync(cmd, args, { cwd, env: cleanEnv(), encoding: 'utf8', timeout: 170_000 });
  const shown = `${cmd} ${args.join(' ')} (exit ${r.status}${r.error ? `, ${r.error.message}` : ''})\n${r.stderr}\n${r.stdout}`;
  assert.equal(r.status, 0, shown.slice(-4000));
  return { out: r.stdout, err: r.stderr };
}

test('npm pack + install into an empty project: no @tensorflow package, summary and predict work', {
  timeout: 300_000,
}, async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xception-pack-'));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  run(npm, ['pack', '--pack-destination', tmp], root);
  const tarball = fs.readdirSync(tmp).find((f) => f.endsWith('.tgz'));
  assert.ok(tarball, 'npm pack wrote no tarball');

  const app = path.join(tmp, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  run(npm, ['install', '--no-audit', '--no-fund', '--prefer-offline', path.join(tmp, tarball)], app);

  const modules = path.join(app, 'node_modules');
  const tf = fs.readdirSync(modules).filter((d) => /^@tensorflow/.test(d));
  assert.deepEqual(tf, [], `the install brought ${tf.join(', ')}`);
  const asset = JSON.parse(fs.readFileSync(path.join(modules, 'xception/assets/imagenet-classes.json'), 'utf8'));
  assert.equal(asset.names.length, 1000);
  assert.match(asset.license, /^Apache-2\.0/);

  const summary = run(npx, ['--no', 'xception', 'summary'], app);
  assert.match(summary.out, /Total params: 22,910,480/);

  const image = path.join(app, 'photo.png');
  const pixels = Buffer.from(Array.from({ length: 40 * 30 * 3 }, (_, i) => (i * 37) % 256));
  await sharp(pixels, { raw: { width: 40, height: 30, channels: 3 } })
    .png()
    .toFile(image);
  const modelArgs = ['--width', '0.0625', '--middle-blocks', '1', '--input-shape', '71,71,3'];
  const predicted = run(npx, ['--no', 'xception', 'predict', image, '--json', '--top', '3', ...modelArgs], app);
  assert.match(predicted.err, /random/i, 'predict should say the weights are random');
  const line = JSON.parse(predicted.out.trim());
  assert.equal(line.predictions.length, 3);
  for (const p of line.predictions) assert.equal(p.label, asset.names[p.index], `label of class ${p.index}`);
});
