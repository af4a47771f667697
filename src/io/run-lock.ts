/**
 * One writer per run folder. The lock is a file, `run.lock`, holding the owner's pid, host and
 * start time. It is created exclusively — hard-linked from a temporary file already holding the
 * pid: link(2), like open(O_EXCL), fails when the name exists, and the lock never exists empty.
 * A lock whose process is gone (killed) is taken over; a live one refuses with a clear error.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { OptionError } from '../core/errors.js';
import { processExists } from './atomic.js';
import { isSystemError } from './output-paths.js';

export const LOCK_FILE = 'run.lock';

interface LockOwner {
  pid: number;
  host: string;
  since: string;
}

/** Lock files this process holds, removed at exit should a release be skipped (process.exit). */
const held = new Map<string, number>();
let exitHookInstalled = false;

/**
 * Takes the lock of run folder `dir` (which must exist) or throws an OptionError naming the
 * process that holds it. Returns the release function.
 */
export function acquireRunLock(dir: string): () => void {
  const file = join(dir, LOCK_FILE);
  const me: LockOwner = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  for (let attempt = 0; attempt < 5; attempt++) {
    if (tryCreate(file, me)) return holdLock(file);
    const owner = readOwner(file);
    if (owner && isAlive(owner)) {
      throw new OptionError(
        `${dir} is in use by an xception process (pid ${owner.pid} on ${owner.host}, since ${owner.since}): ` +
          `two processes cannot write one run folder. Wait for it to end or stop it, or choose another --out` +
          (owner.host !== me.host ? ` (if that process is gone, delete ${file})` : ''),
      );
    }
    takeOver(file);
  }
  throw new OptionError(`${dir}: could not take ${LOCK_FILE}: other processes keep taking it`);
}

function tryCreate(file: string, me: LockOwner): boolean {
  const tmp = `${join(dirname(file), `.${LOCK_FILE}`)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(me)}\n`, { flag: 'wx' });
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (e) {
    if (isSystemError(e) && e.code === 'EEXIST') return false;
    if (isSystemError(e) && NO_HARD_LINKS.includes(e.code)) return createExclusive(file, me);
    throw e;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** What link(2) fails with on file systems without hard links (FAT, some network and FUSE mounts). */
const NO_HARD_LINKS = ['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'];

/** The plain O_EXCL create, where links are not to be had (the lock is briefly empty). */
function createExclusive(file: string, me: LockOwner): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, 'wx', 0o644);
  } catch (e) {
    if (isSystemError(e) && e.code === 'EEXIST') return false;
    throw e;
  }
  try {
    fs.writeSync(fd, `${JSON.stringify(me)}\n`);
  } finally {
    fs.closeSync(fd);
  }
  return true;
}

/** The lock's owner, or null when there is no lock or it is unreadable (as good as stale). */
function readOwner(file: string): LockOwner | null {
  try {
    const o = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<LockOwner>;
    if (!Number.isSafeInteger(o.pid) || typeof o.host !== 'string') return null;
    return { pid: o.pid!, host: o.host, since: String(o.since) };
  } catch {
    return null;
  }
}

/** Another host's process cannot be checked from here: assumed alive. */
function isAlive(owner: LockOwner): boolean {
  if (owner.host !== hostname()) return true;
  if (owner.pid === process.pid) return true; // this process, in another run of the folder
  return processExists(owner.pid);
}

/**
 * Removes a stale lock. Renamed aside first and checked: if another process took the lock over in
 * the meantime, the name now holds its live lock, which is put back rather than deleted.
 */
function takeOver(file: string): void {
  const aside = `${join(dirname(file), `.${LOCK_FILE}`)}.stale.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    fs.renameSync(file, aside);
  } catch (e) {
    if (isSystemError(e) && e.code === 'ENOENT') return; // someone else removed it
    throw e;
  }
  const owner = readOwner(aside);
  if (owner && isAlive(owner) && owner.pid !== process.pid) {
    try {
      fs.linkSync(aside, file);
    } catch {
      /* a third process holds the name now; it wins */
    }
  }
  fs.rmSync(aside, { force: true });
}

function holdLock(file: string): () => void {
  held.set(file, process.pid);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const f of held.keys()) releaseLock(f);
    });
  }
  return () => releaseLock(file);
}

/** Removes the lock if it is still this process's. */
function releaseLock(file: string): void {
  if (!held.delete(file)) return;
  if (readOwner(file)?.pid === process.pid) fs.rmSync(file, { force: true });
}
