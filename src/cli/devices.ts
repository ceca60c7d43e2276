// `mf devices`: what WebGPU adapters this machine offers.
import { listAdapters } from '../backend/dawn.ts';

export async function devicesCommand(opts: { json?: boolean }): Promise<void> {
  const adapters = await listAdapters();
  if (opts.json) {
    console.log(JSON.stringify(adapters, null, 2));
    return;
  }
  if (adapters.length === 0) {
    console.log('no WebGPU adapter found: run scripts/setup.sh (installs Mesa lavapipe on Debian), or use --backend cpu');
    process.exitCode = 1;
    return;
  }
  for (const a of adapters) {
    console.log(`${a.description}${a.isSoftware ? '  [software]' : ''}`);
    console.log(`  backend       ${a.backend}`);
    console.log(`  vendor        ${a.vendor || '-'}`);
    console.log(`  architecture  ${a.architecture || '-'}`);
    console.log(`  device        ${a.device || '-'}`);
    for (const [k, v] of Object.entries(a.limits)) console.log(`  ${k.padEnd(34)}${v}`);
    console.log(`  features      ${a.features.join(', ')}`);
  }
}
