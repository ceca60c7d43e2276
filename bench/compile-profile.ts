// Per-specialisation compile cost on a CPU rasteriser (BENCHMARKS.md, cold start). Records the kernel calls of one
// Medformer-small 2D batch-64 training step without running them, then replays each distinct specialisation once
// (compile + run) and once more (run); the difference is what compiling it cost. Run it on an empty Mesa cache:
//   MESA_SHADER_CACHE_DIR=$(mktemp -d) npx tsx bench/compile-profile.ts > profile.json
import { DawnBackend } from '../src/backend/dawn.ts';
import { specKey } from '../src/backend/kernel.ts';
import type { KernelCall } from '../src/backend/backend.ts';
import { Medformer } from '../src/models/medformer.ts';
import { ParameterStore } from '../src/nn/parameters.ts';
import { crossEntropy } from '../src/ops/losses.ts';
import { AdamW } from '../src/train/adamw.ts';
import { resolveModelConfig } from '../src/models/medformer_config.ts';
import { setBackend, Tensor, tidy } from '../src/tensor/tensor.ts';

const backend = await DawnBackend.create();
if (!backend) throw new Error('no WebGPU adapter: run scripts/setup.sh');
setBackend(backend);
const config = resolveModelConfig('small');
const store = new ParameterStore(0);
const model = new Medformer(store, {
  config,
  inputs: [{ dim: 2, channels: 1 }],
  tasks: [{ name: 't', outputs: 2 }],
  numModalities: 12,
  numBodyParts: 12,
});
store.finalize();
const opt = new AdamW(store, { lr: 1e-4, weightDecay: 1e-3, maxGradNorm: 1 });
const B = 64;
const calls: KernelCall[] = [];
const run = backend.run;
backend.run = (c: KernelCall) => {
  calls.push(c);
};
const x = Tensor.from(new Float32Array(B * 28 * 28).fill(0.1), [B, 1, 28, 28]);
const labels = Tensor.from(
  Int32Array.from({ length: B }, (_, i) => i % 2),
  [B],
  'i32',
);
store.zeroGrad();
tidy(() => {
  crossEntropy(model.forward(x, { dim: 2, channels: 1, modality: 0, bodyPart: 0 }, 't'), labels).backward();
});
opt.step(1e-4);
backend.run = run;
const seen = new Map<string, KernelCall>();
for (const c of calls) {
  const k = specKey(
    c.kernel,
    c.entry,
    c.consts,
    c.fconsts,
    (backend as unknown as { runtimeNames(k: string): readonly string[] }).runtimeNames(c.kernel),
  );
  if (!seen.has(k)) seen.set(k, c);
}
const rows: { key: string; cold: number; warm: number }[] = [];
const t00 = performance.now();
for (const [key, c] of seen) {
  const t0 = performance.now();
  backend.run(c);
  await backend.sync();
  const t1 = performance.now();
  backend.run(c);
  await backend.sync();
  const t2 = performance.now();
  rows.push({ key, cold: t1 - t0, warm: t2 - t1 });
}
const total = performance.now() - t00;
const fam = new Map<string, { n: number; ms: number }>();
for (const r of rows) {
  const f = r.key.split(':').slice(0, 2).join(':');
  const e = fam.get(f) ?? { n: 0, ms: 0 };
  e.n++;
  e.ms += r.cold - r.warm;
  fam.set(f, e);
}
console.log(
  JSON.stringify(
    {
      calls: calls.length,
      pipelines: seen.size,
      total_ms: Math.round(total),
      families: [...fam].sort((a, b) => b[1].ms - a[1].ms).map(([k, v]) => ({ entry: k, n: v.n, compile_ms: Math.round(v.ms) })),
      rows: rows.map((r) => ({ key: r.key, compile_ms: Math.round(r.cold - r.warm), run_ms: +r.warm.toFixed(1) })),
    },
    null,
    1,
  ),
);
backend.destroy();
