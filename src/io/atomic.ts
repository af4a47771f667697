import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { killPoint } from './kill-point.js';

/** Temporary files of this process's writes under way: the only ones cleanup must leave alone. */
const inFlight = new Set<string>();

/**
 * Writes `bytes` to `target` so that a reader (or a crash) sees either the old file or the whole
 * new one, never a torn write: the bytes go to a temporary file in the same directory (rename is
 * only atomic within one file system), are fsynced, then renamed over the target; finally the
 * directory is fsynced so the rename itself survives a power cut.
 */
export async function writeFileAtomic(target: string, bytes: Uint8Array): Promise<void> {
  const tmp = tempNameFor(target);
  let handle: fsp.FileHandle | undefined;
  inFlight.add(tmp);
  try {
    handle = await fsp.open(tmp, 'wx', 0o644);
    await handle.writeFile(bytes);
    killPoint('temp-written');
    await handle.sync();
    await handle.close();
    handle = undefined;
    killPoint('temp-synced');
    await fsp.rename(tmp, target);
  } catch (err) {
    if (handle) await handle.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  } finally {
    inFlight.delete(tmp);
  }
  killPoint('renamed');
  await syncDirectory(path.dirname(target));
}

/** Synchronous twin of {@link writeFileAtomic}. */
export function writeFileAtomicSync(target: string, bytes: Uint8Array): void {
  const tmp = tempNameFor(target);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx', 0o644);
    let written = 0;
    while (written < bytes.length) written += fs.writeSync(fd, bytes, written, bytes.length - written);
    killPoint('temp-written');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    killPoint('temp-synced');
    fs.renameSync(tmp, target);
  } catch (err) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        /* already failing */
      }
    }
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  killPoint('renamed');
  try {
    const dirFd = fs.openSync(path.dirname(target), 'r');
    try {
      fs.fsyncSync(dirFd);
    } finally {
      fs.closeSync(dirFd);
    }
  } catch {
    /* some file systems refuse to fsync a directory; the rename is still done */
  }
}

function tempNameFor(target: string): string {
  const dir = path.dirname(target);
  return path.join(dir, `.${path.basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/** `.NAME.PID.RANDOM.tmp`, as tempNameFor makes them; the PID is the writer's. */
const TEMP_NAME = /^\..+\.(\d+)\.[0-9a-f]{12}\.tmp$/;

/** True when a process with this id exists (possibly another user's). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temporary files that writes killed before their rename left in `dir`: those of
 * processes that no longer run, and this process's own that no write of it is using. A live
 * process's are left alone (it may be writing). Returns the names removed.
 */
export function removeStaleTempFiles(dir: string): string[] {
  const removed: string[] = [];
  for (const name of fs.readdirSync(dir)) {
    const pid = Number(TEMP_NAME.exec(name)?.[1] ?? Number.NaN);
    if (!Number.isSafeInteger(pid)) continue;
    const file = path.join(dir, name);
    const stale = pid === process.pid ? !inFlight.has(file) : !processExists(pid);
    if (!stale) continue;
    fs.rmSync(file, { force: true });
    removed.push(name);
  }
  return removed;
}

async function syncDirectory(dir: string): Promise<void> {
  try {
    const h = await fsp.open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    /* see writeFileAtomicSync */
  }
}
