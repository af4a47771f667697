/** Runs `xception …` in this process and captures what it writes (stdout via `out`, and stderr). */
import { main } from '../../src/cli/main.js';

export async function runCli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string | Uint8Array) => ((err += String(s)), true)) as typeof process.stderr.write;
  try {
    const code = await main(args, (s) => (out += s));
    return { code, out, err };
  } finally {
    process.stderr.write = write;
  }
}
