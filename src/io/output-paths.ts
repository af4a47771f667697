/**
 * Where outputs go: folders created level by level and output files checked before any work, so
 * that a bad `--out` is one clear line naming the path, not a Node stack trace (or a hang: Node's
 * recursive mkdir loops forever under /proc).
 */
import { accessSync, constants, mkdirSync, statSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { OptionError } from '../core/errors.js';

/** Node's error for a failed system call (fs, child processes …): it carries `code`, often `path`. */
export interface SystemError extends Error {
  code: string;
  syscall?: string;
  path?: string;
}

export function isSystemError(e: unknown): e is SystemError {
  return e instanceof Error && typeof (e as Partial<SystemError>).code === 'string' && /^E[A-Z0-9]+$/.test((e as SystemError).code);
}

const REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  ENOENT: 'no such file or folder',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'it is a folder, not a file',
  EEXIST: 'something is already there',
  EMFILE: 'too many open files',
  ENAMETOOLONG: 'the name is too long',
  EIO: 'input/output error',
};

/** One line for a system error: what failed, on which path, why (with the code for searching). */
export function describeSystemError(e: SystemError): string {
  const reason = REASONS[e.code] ?? e.message.replace(/^E[A-Z0-9]+: /, '').replace(/,.*$/, '');
  const what = e.syscall ? `${e.syscall}${e.path ? ` ${e.path}` : ''}` : (e.path ?? '');
  return `${what ? `${what}: ` : ''}${reason} (${e.code})`;
}

/** Why a call failed, without the path (the message names it already). */
function reasonOf(e: unknown): string {
  return isSystemError(e) ? `${REASONS[e.code] ?? e.message} (${e.code})` : String(e);
}

/** The path's status, or null when nothing is there (also when a parent is a file: ENOTDIR). */
function statOrNull(path: string): Stats | null {
  try {
    return statSync(path, { throwIfNoEntry: false }) ?? null;
  } catch (e) {
    if (isSystemError(e) && e.code === 'ENOTDIR') return null;
    throw e;
  }
}

/**
 * Creates the folder `dir` and any missing parents for output and returns its absolute path, or
 * throws an OptionError naming `flag`, the folder that could not be made, and why.
 */
export function makeOutputDir(dir: string, flag = '--out', given = dir): string {
  const target = resolve(dir);
  const fail = (why: string): never => {
    throw new OptionError(`${flag} ${given}: ${why}; choose another ${flag}`);
  };
  const missing: string[] = [];
  let existing = target;
  let st = statOrNull(existing);
  while (!st) {
    missing.unshift(existing);
    const parent = dirname(existing);
    if (parent === existing) break;
    existing = parent;
    st = statOrNull(existing);
  }
  if (st && !st.isDirectory()) fail(`${existing} is a file, not a folder`);
  for (const level of missing) {
    try {
      mkdirSync(level);
    } catch (e) {
      if (isSystemError(e) && e.code === 'EEXIST' && statOrNull(level)?.isDirectory()) continue; // made meanwhile
      fail(`cannot create the folder ${level}: ${reasonOf(e)}`);
    }
  }
  try {
    accessSync(target, constants.W_OK | constants.X_OK);
  } catch (e) {
    fail(`cannot write in this folder: ${reasonOf(e)}`);
  }
  return target;
}

/**
 * Checks that `file` can be written as an output (its folder is created when missing) before the
 * work that produces it; throws an OptionError naming `flag` otherwise.
 */
export function checkOutputFile(file: string, flag = '--out'): string {
  const target = resolve(file);
  if (statOrNull(target)?.isDirectory())
    throw new OptionError(`${flag} ${file} is a folder; give a file name, e.g. ${flag} ${file.replace(/\/+$/, '')}/model.onnx`);
  makeOutputDir(dirname(target), flag, file);
  return target;
}
