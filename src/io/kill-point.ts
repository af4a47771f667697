/**
 * A test hook for crash tests: with XCEPTION_TEST_KILL_AT=POINT:N in the environment the process
 * kills itself with SIGKILL the Nth time (from 1) it passes POINT — no handler runs, no file is
 * closed, as after a power cut or `kill -9`. Without the variable a pass costs one comparison.
 */
import { OptionError } from '../core/errors.js';

/** Where a crash test may kill: inside an atomic write (temp file written, fsynced, renamed), after a training step, during an evaluation. */
export const KILL_POINTS = ['temp-written', 'temp-synced', 'renamed', 'step', 'eval-batch'] as const;
export type KillPoint = (typeof KILL_POINTS)[number];

export const KILL_AT_VARIABLE = 'XCEPTION_TEST_KILL_AT';

function parseKillAt(text: string | undefined): { point: KillPoint; n: number } | null {
  if (!text) return null;
  const m = /^([a-z-]+):(\d+)$/.exec(text);
  const point = KILL_POINTS.find((p) => p === m?.[1]);
  // A typo must not pass silently: the crash test would then test nothing.
  if (!m || !point || Number(m[2]) < 1)
    throw new OptionError(`${KILL_AT_VARIABLE}=${text}: expected POINT:N with POINT one of ${KILL_POINTS.join(', ')} and N ≥ 1`);
  return { point, n: Number(m[2]) };
}

const killAt = parseKillAt(process.env[KILL_AT_VARIABLE]);
let passes = 0;

export function killPoint(point: KillPoint): void {
  if (killAt === null || killAt.point !== point) return;
  passes++;
  if (passes === killAt.n) process.kill(process.pid, 'SIGKILL');
}
