import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { nativeBackendStatus } from '../../src/backends/onednn/index.js';

const CHILD = fileURLToPath(new URL('../helpers/native-oom-child.js', import.meta.url));
const LIMIT_KIB = 4 * 1024 * 1024; // ulimit -v 4 GiB: the whole address space of the child

type Outcome = { size: number; ok?: true; error?: string; message?: string };

/** Runs the child under `ulimit -v`, asking for these float32 counts in turn. */
function underLimit(sizes: number[]): Outcome[] {
  const r = spawnSync('bash', ['-c', `ulimit -v ${LIMIT_KIB} && exec "$0" "$@"`, process.execPath, CHILD, ...sizes.map(String)], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1' },
    timeout: 60_000,
  });
  assert.equal(r.status, 0, `child failed (status ${r.status}, signal ${r.signal}):\n${r.stderr}`);
  return JSON.parse(r.stdout) as Outcome[];
}

test('under ulimit -v, a request past the limit is a typed OutOfMemoryError (ERR_XCEPTION_NATIVE_OOM), not a crash', (t) => {
  if (!nativeBackendStatus().available) return t.skip(nativeBackendStatus().reason);
  if (process.platform !== 'linux') return t.skip('ulimit -v and the arena are Linux-specific');
  // ASan and TSan map terabytes of shadow memory: no sanitized process starts under ulimit -v.
  if (/lib[at]san/.test(process.env.LD_PRELOAD ?? ''))
    return t.skip('a sanitizer runtime is preloaded (its shadow memory needs no ulimit -v)');
  // 40 MB fits; 8 GiB is more than the limit allows at all (refused before any mmap or malloc);
  // 3.6 GB is under the limit but more than the address space left (the kernel refuses it);
  // then 40 MB again: the backend still works after refusing.
  const out = underLimit([10_000_000, 2_000_000_000, 900_000_000, 10_000_000]);
  assert.deepEqual(
    out.map((o) => o.ok ?? o.error),
    [true, 'OutOfMemoryError', 'OutOfMemoryError', true],
  );
  for (const o of out.filter((x) => x.error)) {
    assert.match(o.message!, /native zeros: out of native memory: \d+ bytes refused/);
  }
});
