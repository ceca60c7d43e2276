// `npm run build:web`: the page of `mf serve` (dashboard, engine, kernels) as static files in dist/web/.
import path from 'node:path';
import { writeWeb } from '../src/serve/bundle.ts';

for (const f of await writeWeb()) console.log(`wrote ${path.relative(process.cwd(), f)}`);
