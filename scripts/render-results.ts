// Renders the measured-results table of REPRODUCE.md from results/*.json (between its results markers).
// Usage: npx tsx scripts/render-results.ts [--check]   (--check: exit 1 when REPRODUCE.md is out of date)
import fs from 'node:fs';
import { renderResults, spliceResults } from '../src/report/results.ts';

const DOC = 'REPRODUCE.md';
const doc = fs.readFileSync(DOC, 'utf8');
const next = spliceResults(doc, renderResults('results'), DOC);
if (process.argv.includes('--check')) {
  if (next !== doc) {
    console.error(`${DOC} is out of date with results/: run npx tsx scripts/render-results.ts`);
    process.exit(1);
  }
  console.log(`${DOC} matches results/`);
} else {
  fs.writeFileSync(DOC, next);
  console.log(`${DOC}: results table rendered from results/`);
}
