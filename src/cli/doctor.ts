// `mf doctor`: checks what a run needs and prints what to fix.
import fs from 'node:fs';
import path from 'node:path';
import { listAdapters } from '../backend/dawn.ts';
import { md5File, resolveDataRoot } from '../data/dataset.ts';
import { DATASETS, availableSizes, fileFor } from '../data/registry.ts';

interface Check {
  what: string;
  ok: boolean | 'warn';
  detail: string;
  fix?: string;
}

export async function doctorChecks(opts: { dataDir?: string; runs?: string; md5?: boolean }): Promise<Check[]> {
  const checks: Check[] = [];
  const major = Number(process.versions.node.split('.')[0]);
  checks.push({ what: 'node', ok: major >= 20, detail: `v${process.versions.node}`, fix: 'install Node.js 20 or newer' });

  try {
    const adapters = await listAdapters();
    const hw = adapters.find((a) => !a.isSoftware);
    if (adapters.length === 0) {
      checks.push({
        what: 'webgpu adapter',
        ok: false,
        detail: 'none found',
        fix: 'run scripts/setup.sh (installs Mesa lavapipe on Debian 12), or use --backend cpu',
      });
    } else {
      const a = hw ?? adapters[0];
      checks.push({
        what: 'webgpu adapter',
        ok: hw ? true : 'warn',
        detail: `${a.description} (${a.backend}${a.isSoftware ? ', software: slow' : ''})`,
        fix: hw ? undefined : 'a real GPU driver makes training far faster',
      });
    }
  } catch (e) {
    checks.push({ what: 'webgpu adapter', ok: false, detail: (e as Error).message, fix: 'reinstall with npm ci; run scripts/setup.sh' });
  }

  const root = resolveDataRoot(opts.dataDir);
  const rootExists = fs.existsSync(root);
  checks.push({
    what: 'data root',
    ok: rootExists ? true : 'warn',
    detail: root,
    fix: rootExists ? undefined : `create it and copy MedMNIST .npz files there, or pass --data-dir (synthetic data works without it)`,
  });
  if (rootExists) {
    for (const ds of DATASETS) {
      if (ds.synthetic) continue;
      for (const size of availableSizes(ds)) {
        const f = fileFor(ds, size);
        const p = path.join(root, f.file);
        if (!fs.existsSync(p)) continue;
        if (opts.md5 === false) {
          checks.push({ what: `data ${f.file}`, ok: true, detail: 'present (md5 not checked)' });
          continue;
        }
        const md5 = await md5File(p);
        checks.push({
          what: `data ${f.file}`,
          ok: md5 === f.md5,
          detail: md5 === f.md5 ? 'md5 ok' : `md5 ${md5}, expected ${f.md5}`,
          fix: `replace it with the official file (mf data download ${ds.key} --size ${size})`,
        });
      }
    }
  }

  const runs = path.resolve(opts.runs ?? 'runs');
  try {
    fs.mkdirSync(runs, { recursive: true });
    const probe = path.join(runs, `.doctor-${process.pid}`);
    fs.writeFileSync(probe, 'ok');
    fs.rmSync(probe);
    checks.push({ what: 'runs folder', ok: true, detail: `${runs} is writable` });
  } catch (e) {
    checks.push({
      what: 'runs folder',
      ok: false,
      detail: `${runs}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      fix: 'fix its permissions or run from another directory',
    });
  }
  return checks;
}

export async function doctorCommand(opts: { dataDir?: string; runs?: string; json?: boolean }): Promise<void> {
  const checks = await doctorChecks(opts);
  if (opts.json) {
    console.log(JSON.stringify(checks, null, 2));
  } else {
    for (const c of checks) {
      const mark = c.ok === true ? 'ok  ' : c.ok === 'warn' ? 'warn' : 'FAIL';
      console.log(`${mark}  ${c.what.padEnd(28)} ${c.detail}${c.ok !== true && c.fix ? `\n      fix: ${c.fix}` : ''}`);
    }
  }
  if (checks.some((c) => c.ok === false)) process.exitCode = 1;
}
