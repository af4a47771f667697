/**
 * Training progress: a single redrawn bar on a terminal, plain lines otherwise (logs, CI,
 * pipes). Everything goes to the given stream (stderr when stdout carries JSON).
 */
export interface StepInfo {
  epoch: number;
  epochs: number;
  batch: number;
  batches: number;
  loss: number;
  accuracy: number;
  imagesPerSec: number;
  etaSeconds: number;
  lr: number;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600),
    m = Math.floor((s % 3600) / 60),
    r = s % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(r).padStart(2, '0')}` : `${m}:${String(r).padStart(2, '0')}`;
}

export class Progress {
  private lastDraw = 0;
  private lastPlainFraction = -1;
  private barShown = false;

  constructor(
    private readonly stream: { write(s: string): unknown; isTTY?: boolean; columns?: number },
    private readonly quiet = false,
  ) {}

  private get tty(): boolean {
    return Boolean(this.stream.isTTY);
  }

  step(i: StepInfo): void {
    if (this.quiet) return;
    const stats = `loss ${i.loss.toFixed(4)}  acc ${(100 * i.accuracy).toFixed(2)}%  ${i.imagesPerSec.toFixed(0)} img/s  lr ${i.lr.toPrecision(3)}  ETA ${formatDuration(i.etaSeconds)}`;
    if (this.tty) {
      const now = Date.now();
      if (now - this.lastDraw < 100 && i.batch < i.batches) return;
      this.lastDraw = now;
      const width = 24;
      const filled = Math.round((width * i.batch) / i.batches);
      const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
      const line = `epoch ${i.epoch}/${i.epochs} ${bar} ${i.batch}/${i.batches}  ${stats}`;
      const cols = this.stream.columns ?? 120;
      this.stream.write(`\r${line.slice(0, cols - 1)}\x1b[K`);
      this.barShown = true;
      return;
    }
    // Plain: about ten lines per epoch.
    const fraction = Math.floor((10 * i.batch) / i.batches);
    if (fraction === this.lastPlainFraction && i.batch !== i.batches) return;
    this.lastPlainFraction = fraction;
    this.stream.write(`epoch ${i.epoch}/${i.epochs} batch ${i.batch}/${i.batches}  ${stats}\n`);
  }

  line(text: string): void {
    if (this.quiet) return;
    if (this.barShown) {
      this.stream.write('\r\x1b[K');
      this.barShown = false;
    }
    this.lastPlainFraction = -1;
    this.stream.write(`${text}\n`);
  }
}
