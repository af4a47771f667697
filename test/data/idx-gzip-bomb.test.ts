/**
 * A gzip bomb: a ~10 MB gzip of an IDX file that inflates to 10 GiB of zeros. Reading it must be
 * refused quickly with a DatasetError and a peak RSS well under 512 MiB, whether the header
 * claims the whole 10 GiB (over the cap) or a modest size (the data overruns what it declares).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const child = fileURLToPath(new URL('../helpers/gzip-bomb-child.js', import.meta.url));
const MiB = 1024 * 1024;

/** gzip members concatenated: one for the header, then 10,240 of 1 MiB of zeros each (~1 KB). */
function writeBomb(file: string, shape: number[]): number {
  const header = Buffer.alloc(4 + 4 * shape.length);
  header.set([0, 0, 8, shape.length]);
  shape.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  const zeros = gzipSync(Buffer.alloc(MiB), { level: 9 });
  const parts = [gzipSync(header), ...Array.from({ length: 10240 }, () => zeros)];
  const bytes = Buffer.concat(parts);
  fs.writeFileSync(file, bytes);
  return bytes.length;
}

function readInChild(file: string): { error?: string; message?: string; ms: number; peakRssBytes: number } {
  return JSON.parse(execFileSync(process.execPath, [child, file], { encoding: 'utf8', timeout: 60_000 }));
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xception-bomb-'));

for (const [what, shape] of [
  ['claims the whole 10 GiB', [10240, 1024, 1024]],
  ['claims 64 MiB and overruns it', [64, 1024, 1024]],
] as const) {
  test(`an IDX gzip bomb that ${what} is refused quickly with a DatasetError, peak RSS < 512 MiB`, { timeout: 120_000 }, (t) => {
    const file = path.join(dir, `bomb-${shape[0]}-idx3-ubyte.gz`);
    const size = writeBomb(file, [...shape]);
    assert.ok(size < 12 * MiB, `the bomb is ${size} bytes`);
    const r = readInChild(file);
    fs.rmSync(file);
    t.diagnostic(`refused in ${r.ms} ms, peak RSS ${(r.peakRssBytes / MiB).toFixed(0)} MiB: ${r.message}`);
    assert.equal(r.error, 'DatasetError', JSON.stringify(r));
    assert.ok(r.message!.includes(file), r.message);
    assert.ok(r.peakRssBytes < 512 * MiB, `peak RSS ${(r.peakRssBytes / MiB).toFixed(0)} MiB`);
    assert.ok(r.ms < 10_000, `took ${r.ms} ms`);
  });
}
