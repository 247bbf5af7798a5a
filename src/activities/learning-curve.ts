/** A dependency-free SVG plot of per-epoch metrics: one line per metric, epochs on the x axis. */
import type { EpochRecord } from './store-and-trainer';
import { escapeXml } from './svg';

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b'];

/** Draws every finite metric of `records`; losses and accuracies share the plot, each scaled to its own range. */
export function learningCurveSvg(records: readonly EpochRecord[], title: string): string {
  const width = 800;
  const height = 400;
  const m = { left: 40, right: 250, top: 36, bottom: 44 };
  const names = [...new Set(records.flatMap((r) => Object.keys(r.metrics)))].sort();
  const epochs = records.map((r) => r.epoch);
  const minEpoch = Math.min(...epochs, 1);
  const maxEpoch = Math.max(...epochs, minEpoch + 1);
  const x = (e: number): number => m.left + ((e - minEpoch) / (maxEpoch - minEpoch)) * (width - m.left - m.right);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${m.left}" y="22" font-size="14">${escapeXml(title)}</text>`,
    `<line x1="${m.left}" y1="${height - m.bottom}" x2="${width - m.right}" y2="${height - m.bottom}" stroke="#333"/>`,
    `<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${height - m.bottom}" stroke="#333"/>`,
    `<text x="${(width - m.right + m.left) / 2}" y="${height - 10}" text-anchor="middle">epoch</text>`,
    `<text x="${m.left}" y="${height - m.bottom + 16}" text-anchor="middle">${minEpoch}</text>`,
    `<text x="${width - m.right}" y="${height - m.bottom + 16}" text-anchor="middle">${maxEpoch}</text>`,
  ];
  parts.push(`<text x="${width - m.right + 12}" y="${height - m.bottom}" font-size="10" fill="#666">each line spans its own min–max</text>`);
  names.forEach((name, i) => {
    const points = records
      .map((r) => [r.epoch, r.metrics[name]] as const)
      .filter((p): p is readonly [number, number] => typeof p[1] === 'number' && Number.isFinite(p[1]));
    if (points.length === 0) return;
    const values = points.map((p) => p[1]);
    const lo = Math.min(...values);
    const hi = Math.max(...values);
    const span = hi - lo || 1;
    const y = (v: number): number => height - m.bottom - ((v - lo) / span) * (height - m.top - m.bottom);
    const color = COLORS[i % COLORS.length]!;
    const d = points.map((p, k) => `${k === 0 ? 'M' : 'L'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ');
    parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"/>`);
    const ly = m.top + 18 * i;
    parts.push(`<line x1="${width - m.right + 12}" y1="${ly}" x2="${width - m.right + 32}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    const first = points[0]![1];
    const last = points[points.length - 1]![1];
    parts.push(`<text x="${width - m.right + 38}" y="${ly + 4}">${escapeXml(name)} ${first.toPrecision(3)} → ${last.toPrecision(3)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
