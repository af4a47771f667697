import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { imagenetClassNames, namesFromMobilenet, writeImagenetClassAsset } from '../../src/predict/imagenet-classes.js';

test('the asset packing writes holds the devDependency list, its source and licence', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xception-classes-'));
  try {
    const file = writeImagenetClassAsset(path.join(tmp, 'assets', 'imagenet-classes.json'));
    const asset = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.deepEqual(asset.names, namesFromMobilenet());
    assert.match(asset.source, /^@tensorflow-models\/mobilenet \d+\.\d+\.\d+, dist\/imagenet_classes\.js/);
    assert.match(asset.license, /^Apache-2\.0 /);
    assert.match(asset.copyright, /Google LLC/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('the names read at run time (asset or devDependency) are the devDependency list', () => {
  assert.deepEqual([...imagenetClassNames()], namesFromMobilenet());
  assert.equal(imagenetClassNames()[1], 'goldfish, Carassius auratus');
});
