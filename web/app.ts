// The page of `mf serve`: the run list (polled, so it follows runs while they write), a run's page (curves,
// config, metrics, confusion matrices, "try the model"), several runs overlaid, and the thesis tables as
// `mf table` prints them. Routes live in the URL's hash: #/, #/run/<id>, #/compare/<id>,<id>, #/tables/<id>.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import type { Sample } from '../src/data/model-input.ts';
import type { Prediction } from '../src/kinds/medformer/task-model.ts';
import type { LogRecord } from '../src/train/records.ts';
import type { Confusion, LogChunk, RunDetail, RunSummary } from '../src/serve/runs.ts';
import { loadRunModel, noWebGpuReason, type PageRunModel, predict, prepareFile } from './try-model.ts';

const POLL_MS = 1500;
const main = document.getElementById('main')!;
let stopView: (() => void) | null = null;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

async function getJson<T>(url: string): Promise<T> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}

const fmt = (v: number | null | undefined, digits = 3) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '–');
const pct = (v: number | null | undefined) => (typeof v === 'number' && Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : '–');
const duration = (s: number) => (s < 120 ? `${s.toFixed(1)} s` : s < 7200 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(2)} h`);
const runLink = (id: string) => `#/run/${encodeURIComponent(id)}`;

// ---------------------------------------------------------------------------------------------------------------
// Run list

function runRow(r: RunSummary, selected: Set<string>): HTMLTableRowElement {
  const tasks = Object.keys({ ...r.best_val, ...r.test });
  const perTask = (f: (t: string) => string) => tasks.map(f).join('\n') || '–';
  const box = el('input', { type: 'checkbox', title: 'overlay in "compare"' });
  box.checked = selected.has(r.id);
  box.addEventListener('change', () => (box.checked ? selected.add(r.id) : selected.delete(r.id)));
  return el(
    'tr',
    { 'data-run': r.id, 'data-status': r.status, 'data-steps': String(r.steps) },
    el('td', {}, box),
    el(
      'td',
      {},
      el('a', { href: runLink(r.id) }, r.name),
      r.id !== r.name ? el('span', { class: 'muted' }, ` (${r.id}/)`) : '',
      r.problem ? el('div', { class: 'problem' }, r.problem) : '',
    ),
    el('td', {}, r.kind),
    el('td', {}, r.datasets.join(', ') || '–'),
    el('td', { class: `status ${r.status}` }, r.status),
    el('td', { class: 'num' }, String(r.steps)),
    el('td', { class: 'num' }, perTask((t) => `${tasks.length > 1 ? `${t} ` : ''}${fmt(r.best_val[t])}`)),
    el('td', { class: 'num' }, perTask((t) => (r.test[t] ? `${tasks.length > 1 ? `${t} ` : ''}${fmt(r.test[t]!.auc)} / ${pct(r.test[t]!.acc)}` : '–'))),
    el('td', { class: 'num' }, duration(r.wall_s)),
  );
}

function listView(): () => void {
  const selected = new Set<string>();
  const body = el('tbody');
  const head = ['', 'run', 'kind', 'data sets', 'status', 'steps', 'best val AUC', 'test AUC / ACC', 'wall time'];
  const compare = el('button', {}, 'compare selected');
  compare.addEventListener('click', () => {
    location.hash = `#/compare/${[...selected].map(encodeURIComponent).join(',')}`;
  });
  const root = el('p', { class: 'muted' });
  main.replaceChildren(
    el('h1', {}, 'Runs'),
    root,
    el('table', { id: 'runs', class: 'grid' }, el('thead', {}, el('tr', {}, ...head.map((h) => el('th', {}, h)))), body),
    el('p', {}, compare),
  );
  let alive = true;
  const refresh = async () => {
    const { root: dir, runs } = await getJson<{ root: string; runs: RunSummary[] }>('api/runs');
    if (!alive) return;
    root.textContent = `${runs.length} run${runs.length === 1 ? '' : 's'} in ${dir}; updates every ${POLL_MS / 1000} s`;
    body.replaceChildren(...runs.map((r) => runRow(r, selected)));
  };
  void refresh();
  const timer = setInterval(() => void refresh().catch(() => {}), POLL_MS);
  return () => {
    alive = false;
    clearInterval(timer);
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Curves

/** One curve of a chart: a label and its points. */
interface Curve {
  label: string;
  xs: number[];
  ys: (number | null)[];
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];

/** A uPlot chart of curves over optimizer steps; several curves share the union of their steps. */
class Chart {
  readonly box: HTMLDivElement;
  private plot: uPlot | null = null;
  private curves: Curve[] = [];

  constructor(
    readonly id: string,
    readonly title: string,
    private readonly logY = false,
  ) {
    this.box = el('div', { class: 'chart', id, 'data-points': '0' });
  }

  set(curves: Curve[]): void {
    this.curves = curves;
    const xs = [...new Set(curves.flatMap((c) => c.xs))].sort((a, b) => a - b);
    const at = new Map(xs.map((x, i) => [x, i]));
    const columns = curves.map((c) => {
      const col: (number | null)[] = new Array(xs.length).fill(null);
      c.xs.forEach((x, i) => {
        col[at.get(x)!] = c.ys[i]!;
      });
      return col;
    });
    const points = curves.reduce((n, c) => n + c.xs.length, 0);
    this.box.dataset.points = String(points);
    const data = [xs, ...columns] as uPlot.AlignedData;
    if (this.plot && this.plot.series.length === curves.length + 1) {
      this.plot.setData(data);
      return;
    }
    this.plot?.destroy();
    if (xs.length === 0) {
      this.box.replaceChildren(el('p', { class: 'muted' }, `${this.title}: nothing logged yet`));
      return;
    }
    this.box.replaceChildren();
    this.plot = new uPlot(
      {
        title: this.title,
        width: 380,
        height: 240,
        scales: { x: { time: false }, y: this.logY ? { distr: 3 } : {} },
        axes: [{ label: 'step' }, {}],
        series: [
          { label: 'step' },
          ...curves.map((c, i) => ({ label: c.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true, points: { show: c.xs.length < 60 } })),
        ],
      },
      data,
      this.box,
    );
  }

  get curveCount(): number {
    return this.curves.length;
  }
}

/** Loss, learning rate and validation AUC curves of a run's records, curve labels prefixed with `prefix`. */
function curvesOf(records: readonly LogRecord[], prefix = ''): { loss: Curve[]; lr: Curve[]; val: Curve[] } {
  const loss: Curve = { label: `${prefix}loss`, xs: [], ys: [] };
  const lr: Curve = { label: `${prefix}lr`, xs: [], ys: [] };
  const val = new Map<string, Curve>();
  for (const r of records) {
    if (r.event === 'train') {
      loss.xs.push(r.step);
      loss.ys.push(Number.isFinite(r.loss) ? r.loss : null);
      lr.xs.push(r.step);
      lr.ys.push(r.lr);
    } else if (r.event === 'val') {
      const metric = typeof r.auc === 'number' ? 'AUC' : typeof r.psnr_model === 'number' ? 'PSNR' : typeof r.top1 === 'number' ? 'top-1' : null;
      if (metric === null) continue;
      const key = `${prefix}${r.task ?? r.phase ?? ''} val ${metric}`.trim();
      const c = val.get(key) ?? { label: key, xs: [], ys: [] };
      val.set(key, c);
      c.xs.push(r.step);
      c.ys.push(r.auc ?? r.psnr_model ?? r.top1 ?? null);
    }
  }
  return { loss: [loss], lr: [lr], val: [...val.values()] };
}

/** Follows a run's log.jsonl from where the last poll stopped. */
class LogFollower {
  readonly records: LogRecord[] = [];
  private next = 0;

  constructor(private readonly id: string) {}

  /** Whether new records arrived. */
  async poll(): Promise<boolean> {
    const chunk = await getJson<LogChunk>(`api/runs/${encodeURIComponent(this.id)}/log?from=${this.next}`);
    this.next = chunk.next;
    this.records.push(...chunk.records);
    return chunk.records.length > 0;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// A run's page

function confusionTable(c: Confusion): HTMLElement {
  const max = Math.max(1, ...c.rows.flat());
  return el(
    'div',
    { class: 'confusion' },
    el('h3', {}, `${c.task}: test split`),
    el(
      'table',
      { class: 'grid', 'data-task': c.task },
      el('thead', {}, el('tr', {}, el('th', {}, 'true \\ predicted'), ...c.labels.map((l) => el('th', {}, l)))),
      el(
        'tbody',
        {},
        ...c.rows.map((row, i) =>
          el(
            'tr',
            {},
            el('th', {}, c.labels[i] ?? ''),
            ...row.map((v) => el('td', { class: 'num', style: `background: rgba(31, 119, 180, ${(0.75 * v) / max})` }, String(v))),
          ),
        ),
      ),
    ),
  );
}

function metricsView(metrics: unknown): HTMLElement {
  if (!metrics || typeof metrics !== 'object') return el('p', { class: 'muted' }, 'no metrics.json yet (the run has not finished)');
  const rows = Object.entries(metrics as Record<string, { test?: { auc: number; acc: number }; val?: { auc: number; acc: number }; majority_acc?: number; best_epoch?: number; steps?: number }>);
  if (rows.every(([, m]) => m && typeof m === 'object' && 'test' in m)) {
    return el(
      'table',
      { class: 'grid', id: 'metrics' },
      el('thead', {}, el('tr', {}, ...['task', 'test AUC', 'test ACC', 'majority ACC', 'val AUC', 'val ACC', 'best epoch', 'steps'].map((h) => el('th', {}, h)))),
      el(
        'tbody',
        {},
        ...rows.map(([task, m]) =>
          el(
            'tr',
            {},
            el('td', {}, task),
            el('td', { class: 'num' }, fmt(m.test?.auc)),
            el('td', { class: 'num' }, pct(m.test?.acc)),
            el('td', { class: 'num' }, pct(m.majority_acc)),
            el('td', { class: 'num' }, fmt(m.val?.auc)),
            el('td', { class: 'num' }, pct(m.val?.acc)),
            el('td', { class: 'num' }, String(m.best_epoch ?? '–')),
            el('td', { class: 'num' }, String(m.steps ?? '–')),
          ),
        ),
      ),
    );
  }
  return el('pre', { class: 'json' }, JSON.stringify(metrics, null, 2));
}

function predictionsTable(predictions: Prediction[]): HTMLElement {
  const labels = predictions.length ? Object.keys(predictions[0]!.probabilities) : [];
  return el(
    'table',
    { class: 'grid', id: 'predictions' },
    el('thead', {}, el('tr', {}, el('th', {}, 'input'), el('th', {}, 'predicted'), ...labels.map((l) => el('th', {}, l)))),
    el(
      'tbody',
      {},
      ...predictions.map((p) => {
        const best = Math.max(...Object.values(p.probabilities));
        return el(
          'tr',
          { 'data-input': p.input, 'data-probabilities': JSON.stringify(p.probabilities) },
          el('td', {}, p.input),
          el('td', {}, Array.isArray(p.predicted) ? p.predicted.join(', ') || 'no finding above 0.5' : p.predicted),
          ...labels.map((l) =>
            el(
              'td',
              { class: `num${p.probabilities[l] === best ? ' best' : ''}` },
              el('span', { class: 'bar', style: `width: ${Math.round(p.probabilities[l]! * 60)}px` }),
              p.probabilities[l]!.toFixed(4),
            ),
          ),
        );
      }),
    ),
  );
}

/** The drop zone of a run's page: files scored on the page's WebGPU. */
function tryModelSection(detail: RunDetail): HTMLElement {
  const status = el(
    'p',
    { id: 'try-status', class: 'muted' },
    'Drop PNG or JPEG images (2D models), NIfTI volumes (.nii, .nii.gz; 3D models) or .npy arrays here, or pick them.',
  );
  const out = el('div', { id: 'try-output' });
  const picker = el('input', { type: 'file', id: 'try-files', multiple: '', accept: '.png,.jpg,.jpeg,.nii,.nii.gz,.gz,.npy' });
  const zone = el('div', { class: 'dropzone', id: 'try-zone' }, status, picker);
  const heads = el('select', { id: 'try-head' });
  const section = el('section', { id: 'try' }, el('h2', {}, 'Try the model'), heads, zone, out);
  const supervised = ['supervised', 'multitask', 'finetune'].includes(detail.summary.kind);
  if (!supervised) {
    status.textContent = `A "${detail.summary.kind}" run has no classification head to try.`;
    picker.disabled = true;
    return section;
  }
  for (const t of detail.summary.datasets) heads.append(el('option', { value: t }, t));
  if (detail.summary.datasets.length < 2) heads.hidden = true;
  let model: PageRunModel | null = null;
  const run = async (files: File[]) => {
    const reason = await noWebGpuReason();
    if (reason) {
      status.textContent = reason;
      status.className = 'problem';
      section.dataset.state = 'no-webgpu';
      return;
    }
    section.dataset.state = 'busy';
    status.className = 'muted';
    status.textContent = `running ${files.length} file${files.length === 1 ? '' : 's'} on this page's WebGPU…`;
    try {
      if (!model || model.head.key !== heads.value) {
        model?.store.dispose();
        model = await loadRunModel(detail.summary.id, heads.value || undefined);
      }
      const inputs: Sample[] = [];
      const problems: string[] = [];
      for (const f of files) {
        try {
          inputs.push(...(await prepareFile(f, model.head.want)));
        } catch (e) {
          problems.push((e as Error).message);
        }
      }
      const t0 = performance.now();
      const predictions = await predict(model, inputs);
      const ms = performance.now() - t0;
      out.replaceChildren(predictionsTable(predictions), ...problems.map((p) => el('p', { class: 'problem' }, p)));
      status.textContent = `${predictions.length} scored in ${ms.toFixed(0)} ms with ${model.head.weights.file} on this page's WebGPU (${model.head.key}).`;
      section.dataset.state = 'done';
    } catch (e) {
      status.textContent = (e as Error).message;
      status.className = 'problem';
      section.dataset.state = 'error';
    }
  };
  picker.addEventListener('change', () => void run([...(picker.files ?? [])]));
  zone.addEventListener('dragover', (ev) => {
    ev.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (ev) => {
    ev.preventDefault();
    zone.classList.remove('over');
    void run([...(ev.dataTransfer?.files ?? [])]);
  });
  return section;
}

function runView(id: string): () => void {
  const loss = new Chart('chart-loss', 'training loss', true);
  const lr = new Chart('chart-lr', 'learning rate');
  const val = new Chart('chart-val', 'validation');
  const follower = new LogFollower(id);
  let alive = true;
  const header = el('div');
  const body = el('div');
  main.replaceChildren(header, el('div', { class: 'charts' }, loss.box, lr.box, val.box), body);
  const draw = () => {
    const c = curvesOf(follower.records);
    loss.set(c.loss);
    lr.set(c.lr);
    val.set(c.val);
  };
  let finished = false;
  const refreshDetail = async () => {
    const detail = await getJson<RunDetail>(`api/runs/${encodeURIComponent(id)}`);
    if (!alive) return;
    const s = detail.summary;
    header.replaceChildren(
      el('h1', {}, s.name, ' ', el('span', { class: `status ${s.status}`, id: 'run-status' }, s.status)),
      el('p', { class: 'muted' }, `${s.kind} · ${s.datasets.join(', ') || 'no MedMNIST data sets'} · ${s.steps} steps · ${duration(s.wall_s)}`),
    );
    if (finished && s.status === 'finished') return;
    finished = s.status === 'finished';
    body.replaceChildren(
      el('h2', {}, 'Metrics'),
      metricsView(detail.metrics),
      ...(detail.confusion.length ? [el('h2', {}, 'Confusion matrices'), ...detail.confusion.map(confusionTable)] : []),
      tryModelSection(detail),
      el('h2', {}, 'Resolved config'),
      el('pre', { class: 'json', id: 'config' }, JSON.stringify(detail.config, null, 2)),
      el('h2', {}, 'Files'),
      el('ul', { class: 'files' }, ...detail.files.map((f) => el('li', {}, el('a', { href: `files/${encodeURIComponent(id)}/${encodeURIComponent(f)}` }, f)))),
    );
  };
  const tick = async () => {
    if (await follower.poll()) draw();
    if (!finished) await refreshDetail();
  };
  void tick().then(draw);
  const timer = setInterval(() => void tick().catch(() => {}), POLL_MS);
  return () => {
    alive = false;
    clearInterval(timer);
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Compare, tables

function compareView(ids: string[]): () => void {
  const loss = new Chart('compare-loss', 'training loss', true);
  const val = new Chart('compare-val', 'validation');
  const followers = ids.map((id) => new LogFollower(id));
  main.replaceChildren(
    el('h1', {}, 'Compare'),
    el('p', {}, ...ids.flatMap((id, i) => [i ? ', ' : '', el('a', { href: runLink(id) }, id)])),
    ids.length ? el('div', { class: 'charts' }, loss.box, val.box) : el('p', { class: 'muted' }, 'Tick runs in the run list, then "compare selected".'),
  );
  const draw = () => {
    const per = followers.map((f, i) => curvesOf(f.records, `${ids[i]}: `));
    loss.set(per.flatMap((c) => c.loss));
    val.set(per.flatMap((c) => c.val));
  };
  const tick = async () => {
    const changed = await Promise.all(followers.map((f) => f.poll()));
    if (changed.some(Boolean)) draw();
  };
  void tick();
  const timer = setInterval(() => void tick().catch(() => {}), POLL_MS);
  return () => clearInterval(timer);
}

function tablesView(id: string | undefined): () => void {
  const out = el('pre', { id: 'table', class: 'table-md' });
  const links = el('p');
  main.replaceChildren(el('h1', {}, 'Thesis tables'), el('p', { class: 'muted' }, 'As `mf table <id>` prints them: thesis, this project, the MedMNIST baseline; † marks implausible thesis figures.'), links, out);
  void getJson<{ ids: string[] }>('api/tables').then(({ ids }) => {
    links.replaceChildren(...ids.flatMap((t, i) => [i ? ' · ' : '', el('a', { href: `#/tables/${t}`, class: t === id ? 'current' : '' }, `Table ${t}`)]));
  });
  if (id) {
    void getJson<{ markdown: string; warnings: string[] }>(`api/tables/${encodeURIComponent(id)}`)
      .then((t) => {
        out.textContent = t.markdown;
      })
      .catch((e: Error) => {
        out.textContent = e.message;
      });
  }
  return () => {};
}

function route(): void {
  stopView?.();
  const parts = location.hash.replace(/^#\/?/, '').split('/');
  const arg = parts.slice(1).join('/');
  if (parts[0] === 'run' && arg) stopView = runView(decodeURIComponent(arg));
  else if (parts[0] === 'compare') stopView = compareView(arg ? arg.split(',').map(decodeURIComponent) : []);
  else if (parts[0] === 'tables') stopView = tablesView(arg || undefined);
  else stopView = listView();
  for (const a of document.querySelectorAll<HTMLAnchorElement>('header nav a')) {
    a.classList.toggle('current', a.getAttribute('href') === `#/${parts[0] ?? ''}`);
  }
}

window.addEventListener('hashchange', route);
route();
