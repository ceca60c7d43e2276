// Copies finished runs into results/<name>.json as data: what ran (kind, datasets, the config hash and the
// resolved settings), on what commit and device, with which seeds, and the metrics it wrote. REPRODUCE.md's
// measured tables are read off these files. Usage: npx tsx scripts/collect-results.ts <run folder>... [--note TEXT]
import { execSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { resultRecord } from '../src/report/results.ts';
import type { RunSettings } from '../src/kinds/kind.ts';
import { writeJsonAtomic } from '../src/util/files.ts';

const args = process.argv.slice(2);
const noteAt = args.indexOf('--note');
const note = noteAt >= 0 ? args.splice(noteAt, 2)[1] : undefined;
const commit = execSync('git rev-parse HEAD', { encoding: 'utf8' }).trim();
for (const dir of args) {
  const settings = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as RunSettings;
  const metrics = JSON.parse(fs.readFileSync(path.join(dir, 'metrics.json'), 'utf8')) as unknown;
  const seeds = settings.training.seeds ?? [settings.training.seed];
  // A summary over seeds has no device line of its own: its first seed's report has.
  const reportDir = settings.training.seeds ? path.join(dir, `seed-${seeds[0]}`) : dir;
  const report = fs.readFileSync(path.join(reportDir, 'report.md'), 'utf8');
  const device = /^Device: (.*)$/m.exec(report)?.[1] ?? null;
  const out = path.join('results', `${path.basename(dir)}.json`);
  writeJsonAtomic(out, resultRecord(settings, { commit, device, seeds, ...(note ? { note } : {}), metrics }));
  console.log(`${dir} -> ${out}`);
}
