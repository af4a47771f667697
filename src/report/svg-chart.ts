/**
 * Small, dependency-free SVG line charts (learning curves, experiment comparisons), and PNG
 * rendering of them through sharp when it is installed.
 */

export interface Series {
  label: string;
  points: readonly [number, number][];
  color?: string;
  /** Shaded band around the line (e.g. spread over seeds): [x, low, high]. */
  band?: readonly [number, number, number][];
  dashed?: boolean;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  /** Fix the y range (e.g. [0, 1] for accuracy); default fits the data. */
  yRange?: [number, number];
  logY?: boolean;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** "Nice" tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(1);
  return Number(v.toPrecision(4)).toString();
}

/** One chart as a standalone SVG document. */
export function lineChartSvg(series: readonly Series[], o: ChartOptions): string {
  const W = o.width ?? 640,
    H = o.height ?? 400;
  const m = { l: 64, r: 16, t: 36, b: 48 };
  const pw = W - m.l - m.r,
    ph = H - m.t - m.b;
  const tx = (v: number) => (o.logY ? Math.log10(Math.max(v, 1e-12)) : v);
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series
    .flatMap((s) => [...s.points.map((p) => tx(p[1])), ...(s.band ?? []).flatMap((b) => [tx(b[1]), tx(b[2])])])
    .filter(Number.isFinite);
  let [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  let [y0, y1] = o.yRange ? [tx(o.yRange[0]), tx(o.yRange[1])] : ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) {
    y0 -= 0.5;
    y1 += 0.5;
  }
  if (!o.yRange) {
    const pad = (y1 - y0) * 0.05;
    y0 -= pad;
    y1 += pad;
  }
  const px = (x: number) => m.l + ((x - x0) / (x1 - x0)) * pw;
  const py = (y: number) => m.t + ph - ((tx(y) - y0) / (y1 - y0)) * ph;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(o.title)}</text>`);
  for (const t of niceTicks(x0, x1)) {
    out.push(`<line x1="${px(t)}" x2="${px(t)}" y1="${m.t}" y2="${m.t + ph}" stroke="#eee"/>`);
    out.push(`<text x="${px(t)}" y="${m.t + ph + 16}" text-anchor="middle">${fmt(t)}</text>`);
  }
  const yTicks = o.logY ? niceTicks(y0, y1).map((t) => 10 ** t) : niceTicks(y0, y1);
  for (const t of yTicks) {
    const y = py(t);
    out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y}" y2="${y}" stroke="#eee"/>`);
    out.push(`<text x="${m.l - 6}" y="${y + 4}" text-anchor="end">${fmt(t)}</text>`);
  }
  out.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#444"/>`);
  out.push(`<text x="${m.l + pw / 2}" y="${H - 10}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  out.push(`<text transform="translate(16 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length]!;
    if (s.band && s.band.length > 1) {
      const upper = s.band.map((b) => `${px(b[0]).toFixed(1)},${py(b[2]).toFixed(1)}`);
      const lower = [...s.band].reverse().map((b) => `${px(b[0]).toFixed(1)},${py(b[1]).toFixed(1)}`);
      out.push(`<polygon points="${[...upper, ...lower].join(' ')}" fill="${color}" fill-opacity="0.15" stroke="none"/>`);
    }
    const pts = s.points.filter((p) => Number.isFinite(p[1]));
    if (pts.length > 1) {
      out.push(
        `<polyline points="${pts.map((p) => `${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(' ')}" fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
      );
    }
    for (const p of pts.length <= 40 ? pts : [])
      out.push(`<circle cx="${px(p[0]).toFixed(1)}" cy="${py(p[1]).toFixed(1)}" r="2.5" fill="${color}"/>`);
    const ly = m.t + 14 + i * 16;
    out.push(
      `<line x1="${m.l + pw - 150}" x2="${m.l + pw - 130}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
    );
    out.push(`<text x="${m.l + pw - 125}" y="${ly}">${esc(s.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

/** Several charts side by side in one SVG. */
export function chartGridSvg(charts: readonly string[], columns = 2, cellWidth = 640, cellHeight = 400): string {
  const rows = Math.ceil(charts.length / columns);
  const W = cellWidth * Math.min(columns, charts.length),
    H = cellHeight * rows;
  const parts = charts.map((c, i) => {
    const x = (i % columns) * cellWidth,
      y = Math.floor(i / columns) * cellHeight;
    return `<g transform="translate(${x} ${y})">${c.replace(/^<svg[^>]*>/, '').replace(/<\/svg>$/, '')}</g>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">\n${parts.join('\n')}\n</svg>`;
}

/** Renders an SVG to PNG with sharp; returns false (and writes nothing) if sharp is unavailable. */
export async function svgToPng(svg: string, file: string): Promise<boolean> {
  let sharp: typeof import('sharp');
  try {
    sharp = (await import('sharp')).default as unknown as typeof import('sharp');
  } catch {
    return false;
  }
  const { writeFileAtomic } = await import('../io/atomic.js');
  const png = await (sharp as unknown as (b: Buffer) => { png(): { toBuffer(): Promise<Buffer> } })(Buffer.from(svg)).png().toBuffer();
  await writeFileAtomic(file, png);
  return true;
}
