/** Multi-label image folders: DIR/train.csv + DIR/test.csv of file → labels; every bad CSV a DatasetError. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatasetError } from '../../src/data/errors.js';
import { loadMultiLabelFolder } from '../../src/data/labels-csv.js';
import { parseDatasetSpec } from '../../src/data/spec.js';
import { makeTempDir, writeImageFolder } from './fixtures.js';

async function folder(tag: string): Promise<{ dir: string; cleanup: () => void }> {
  const tmp = makeTempDir(tag);
  await writeImageFolder(tmp.dir, { a: 3, b: 2 });
  return tmp;
}

const TRAIN = 'file,labels\na/a-000.png,sea;sand\na/a-001.png,sea\nb/b-000.png,person;sea\n';
const TEST = 'file,labels\na/a-002.png,sand\nb/b-001.png,person;sand\n';

test('a multi-label folder loads: classes from train.csv, sorted; multi-hot targets per row', async () => {
  const tmp = await folder('mlcsv');
  try {
    writeFileSync(join(tmp.dir, 'train.csv'), TRAIN);
    writeFileSync(join(tmp.dir, 'test.csv'), TEST);
    const train = await parseDatasetSpec(`multilabel:${tmp.dir}`).load('train', { imageSize: 8 });
    assert.deepEqual(train.classNames, ['person', 'sand', 'sea']);
    assert.deepEqual([...train.targets!], [0, 1, 1, 0, 0, 1, 1, 0, 1]);
    assert.deepEqual([...train.labels], [1, 2, 0]);
    assert.deepEqual([train.count, train.height, train.channels], [3, 8, 3]);
    const test2 = await loadMultiLabelFolder(tmp.dir, 'test', { size: 8 });
    assert.deepEqual([...test2.targets!], [0, 1, 0, 1, 1, 0]);
  } finally {
    tmp.cleanup();
  }
});

test('bad labels CSVs are DatasetErrors naming the file and line', async () => {
  const tmp = await folder('mlcsv-bad');
  try {
    writeFileSync(join(tmp.dir, 'test.csv'), TEST);
    const fails = async (train: string | Buffer, pattern: RegExp, split: 'train' | 'test' = 'train') => {
      writeFileSync(join(tmp.dir, 'train.csv'), train);
      await assert.rejects(
        loadMultiLabelFolder(tmp.dir, split, { size: 8 }),
        (e: Error) => e instanceof DatasetError && pattern.test(e.message) && e.message.includes('.csv'),
        String(train),
      );
    };
    await fails('file,labels\na/missing.png,sea\n', /line 2: no image file .*missing\.png/);
    await fails('file,labels\na/a-000.png,\n', /line 2: 'a\/a-000\.png' has no labels/);
    await fails('file,labels\na/a-000.png, ; \n', /has no labels/);
    await fails('file,labels\na/a-000.png,sea\n./a/a-000.png,sand\n', /line 3: '.\/a\/a-000\.png' is listed twice \(first on line 2\)/);
    await fails(Buffer.from([...Buffer.from('file,labels\na/a-000.png,caf'), 0xe9, 0x0a]), /is not UTF-8 text/);
    await fails('image,tags\na/a-000.png,sea\n', /line 1 must be the header 'file,labels'/);
    await fails('file,labels\n', /no rows after the header/);
    await fails('file,labels\na/a-000.png,sea,sand\n', /line 2: expected 2 fields/);
    await fails('file,labels\n"a/a-000.png",sea\n', /quoted fields are not supported/);
    await fails('file,labels\n../outside.png,sea\n', /must be a path inside/);
    // test.csv uses 'person', which this train.csv never does.
    await fails('file,labels\na/a-000.png,sea;sand\n', /test\.csv: line 3: unknown class 'person'/, 'test');
    await assert.rejects(
      loadMultiLabelFolder(join(tmp.dir, 'nowhere'), 'train'),
      (e: Error) => e instanceof DatasetError && /cannot read the labels CSV/.test(e.message),
    );
  } finally {
    tmp.cleanup();
  }
});
