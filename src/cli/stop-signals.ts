/**
 * Ctrl-C (SIGINT) and SIGTERM (`docker stop`, systemd, Kubernetes) both ask a training command to
 * stop after the current step and save a checkpoint; a second signal aborts at once.
 */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;
type StopSignal = (typeof STOP_SIGNALS)[number];
const EXIT_CODES: Record<StopSignal, number> = { SIGINT: 130, SIGTERM: 143 };

export interface StopRequests {
  /** True once a stop signal arrived. */
  requested(): boolean;
  /** The shell's exit code for the first signal (128 + its number), for a stopped run. */
  exitCode(): number;
  /** Removes the handlers. */
  dispose(): void;
}

/** Listens for stop signals on behalf of `command` (named in the message). */
export function listenForStop(command: string): StopRequests {
  let first: StopSignal | null = null;
  const handlers = STOP_SIGNALS.map((signal) => {
    const handler = () => {
      if (first !== null) process.exit(EXIT_CODES[first]);
      first = signal;
      const again = signal === 'SIGINT' ? 'Ctrl-C' : 'another signal';
      process.stderr.write(`\nxception ${command}: ${signal}: stopping after this step and saving a checkpoint (${again} to abort)\n`);
    };
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  return {
    requested: () => first !== null,
    exitCode: () => EXIT_CODES[first ?? 'SIGINT'],
    dispose: () => {
      for (const [signal, handler] of handlers) process.off(signal, handler);
    },
  };
}
