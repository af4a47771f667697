/**
 * Learning curves of a run: loss and accuracy per epoch (multi-label runs: the evaluation's
 * MAP@100, their accuracy being undefined), as SVG and (with sharp) PNG.
 */
import { join } from 'node:path';
import { writeFileAtomicSync } from '../io/atomic.js';
import { chartGridSvg, lineChartSvg, svgToPng } from '../report/svg-chart.js';

interface Row {
  epoch: number;
  trainLoss: number;
  trainTop1: number;
  evalLoss: number;
  evalTop1: number;
  /** Multi-label runs: the evaluation's MAP@100 (0–1). */
  evalMap?: number;
}

/** `evalName` null: the run had no evaluation split, so only the training curves are drawn. */
export function curvesSvg(history: readonly Row[], evalName: string | null): string {
  const pts = (f: (r: Row) => number) => history.map((r) => [r.epoch, f(r)] as [number, number]);
  const series = (train: (r: Row) => number, evaluation: (r: Row) => number) => [
    { label: 'train', points: pts(train) },
    ...(evalName !== null ? [{ label: evalName, points: pts(evaluation) }] : []),
  ];
  const loss = lineChartSvg(
    series(
      (r) => r.trainLoss,
      (r) => r.evalLoss,
    ),
    { title: 'Loss', xLabel: 'epoch', yLabel: 'cross-entropy' },
  );
  const multiLabel = history.some((r) => r.evalMap !== undefined);
  const acc = multiLabel
    ? mapChart(history, evalName)
    : lineChartSvg(
        series(
          (r) => 100 * r.trainTop1,
          (r) => 100 * r.evalTop1,
        ),
        { title: 'Top-1 accuracy', xLabel: 'epoch', yLabel: 'accuracy (%)' },
      );
  return chartGridSvg([loss, acc], 2);
}

/** Multi-label: MAP@100 of each epoch's evaluation (training batches measure no MAP). */
function mapChart(history: readonly Row[], evalName: string | null): string {
  const points = history.filter((r) => r.evalMap !== undefined).map((r) => [r.epoch, 100 * r.evalMap!] as [number, number]);
  return lineChartSvg([{ label: evalName ?? 'evaluation', points }], { title: 'MAP@100', xLabel: 'epoch', yLabel: 'MAP@100 (%)' });
}

/** Writes curves.svg and curves.png into the run folder; returns their paths. */
export async function writeCurves(
  dir: string,
  history: readonly Row[],
  evalName: string | null,
): Promise<{ svg: string; png: string | null }> {
  const svg = curvesSvg(history, evalName);
  const svgPath = join(dir, 'curves.svg');
  writeFileAtomicSync(svgPath, new TextEncoder().encode(svg));
  const pngPath = join(dir, 'curves.png');
  const ok = await svgToPng(svg, pngPath).catch(() => false);
  return { svg: svgPath, png: ok ? pngPath : null };
}
