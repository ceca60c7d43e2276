// report.md and its SVG curves: what a researcher opens first after a run.
import path from 'node:path';
import { type DatasetResultJson, GENERATED_STAND_IN, type LogRecord, readLogFile } from './records.ts';

export interface Series {
  label: string;
  points: [number, number][];
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];

/** A small, dependency-free line chart; y may be log-scaled (losses). */
export function lineChartSvg(title: string, xLabel: string, series: Series[], opts: { logY?: boolean } = {}): string {
  const W = 640;
  const H = 320;
  const m = { l: 60, r: 150, t: 30, b: 40 };
  const all = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y) && (!opts.logY || y > 0));
  if (all.length === 0)
    return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}"><text x="20" y="40">${title}: no data</text></svg>`;
  const fy = (y: number) => (opts.logY ? Math.log10(y) : y);
  const xs = all.map(([x]) => x);
  const ys = all.map(([, y]) => fy(y));
  const [x0, x1] = [Math.min(...xs), Math.max(...xs) || 1];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (y0 === y1) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const px = (x: number) => m.l + ((x - x0) / (x1 - x0 || 1)) * (W - m.l - m.r);
  const py = (y: number) => H - m.b - ((fy(y) - y0) / (y1 - y0)) * (H - m.t - m.b);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - 60}" y="18" font-size="13">${title}</text>`,
    `<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="black"/>`,
    `<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="black"/>`,
    `<text x="${(W - m.r) / 2}" y="${H - 8}">${xLabel}</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const v = y0 + ((y1 - y0) * i) / 4;
    const y = H - m.b - ((v - y0) / (y1 - y0)) * (H - m.t - m.b);
    const label = opts.logY ? (10 ** v).toPrecision(2) : v.toPrecision(3);
    parts.push(`<text x="4" y="${y + 4}">${label}</text><line x1="${m.l - 3}" y1="${y}" x2="${m.l}" y2="${y}" stroke="black"/>`);
  }
  parts.push(`<text x="${m.l}" y="${H - m.b + 14}">${x0}</text><text x="${W - m.r - 20}" y="${H - m.b + 14}">${x1}</text>`);
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const pts = s.points
      .filter(([, y]) => Number.isFinite(y) && (!opts.logY || y > 0))
      .map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`);
    if (pts.length) parts.push(`<polyline fill="none" stroke="${c}" stroke-width="1.5" points="${pts.join(' ')}"/>`);
    parts.push(
      `<rect x="${W - m.r + 10}" y="${m.t + i * 16}" width="10" height="10" fill="${c}"/><text x="${W - m.r + 24}" y="${m.t + i * 16 + 9}">${s.label}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** The first lines of every report.md: the run's name, its description and the device it ran on. */
export function reportHeader(name: string, description: string, device: string): string[] {
  return [`# ${name}`, '', description, '', `Device: ${device}`, ''];
}

/** A score as printed, "n/a" where it is undefined (NaN in memory, null in JSON). */
const fixed = (x: number | null, digits: number): string => (x === null || Number.isNaN(x) ? 'n/a' : x.toFixed(digits));
const pct = (x: number | null): string => (x === null || Number.isNaN(x) ? 'n/a' : `${(100 * x).toFixed(1)}%`);

export function reportMarkdown(
  name: string,
  description: string,
  adapter: string,
  results: Record<string, DatasetResultJson>,
  charts: string[],
): string {
  const lines = [
    ...reportHeader(name, description, adapter),
    '| dataset | test AUC | test ACC | majority-class ACC | val AUC | val ACC | best epoch | steps | wall (s) | samples/s |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const [k, r] of Object.entries(results)) {
    lines.push(
      `| ${k} | ${fixed(r.test.auc, 3)} | ${pct(r.test.acc)}${r.beats_majority === false ? ' (not above the majority class)' : ''} | ${r.majority_acc === undefined ? 'n/a' : pct(r.majority_acc)} | ${fixed(r.val.auc, 3)} | ${pct(r.val.acc)} | ${r.best_epoch} | ${r.steps} | ${r.wall_s.toFixed(0)} | ${r.samples_per_s.toFixed(1)} |`,
    );
  }
  lines.push(
    '',
    "AUC and ACC as the official MedMNIST evaluator defines them; the test split is evaluated once, with the checkpoint of the best validation AUC (ties broken by ACC). The majority-class ACC is what always answering the training split's most common class scores on the test split: an ACC at or below it means the model has learned nothing usable for ACC.",
    '',
  );
  // Where the data came from: a generated stand-in says so loudly, since its numbers say nothing about the data set.
  const sources = Object.entries(results).filter(([, r]) => r.data_source);
  if (sources.length) {
    lines.push('Data:', '');
    for (const [k, r] of sources) {
      const src = r.data_source!;
      lines.push(
        src.origin === GENERATED_STAND_IN
          ? `- ${k}: **GENERATED DATA** (a generated stand-in for missing files): these numbers say nothing about ${k}, and mf table keeps them out of the thesis tables`
          : `- ${k}: ${src.origin === 'synthetic' ? 'synthetic set, ' : ''}${src.files.map((f) => `${f.path} (${f.bytes.toLocaleString('en-US')} bytes)`).join(', ')}`,
      );
    }
    lines.push('');
  }
  for (const c of charts) lines.push(`![${c}](${c})`, '');
  return lines.join('\n');
}

/** The run's log.jsonl, every record checked against its schema. */
export function readLog(outDir: string): LogRecord[] {
  return readLogFile(path.join(outDir, 'log.jsonl'));
}

export function series(
  records: readonly Record<string, unknown>[],
  event: string,
  field: string,
  groupBy?: string,
): { label: string; points: [number, number][] }[] {
  const groups = new Map<string, Map<number, number>>();
  for (const r of records) {
    if (r.event !== event || typeof r[field] !== 'number') continue;
    const g = groupBy ? String(r[groupBy]) : field;
    const m = groups.get(g) ?? new Map<number, number>();
    m.set(r.step as number, r[field] as number);
    groups.set(g, m);
  }
  return [...groups].map(([label, m]) => ({ label, points: [...m].sort((a, b) => a[0] - b[0]) }));
}
