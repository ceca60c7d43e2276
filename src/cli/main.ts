// `mf`: the command line. Each command lives in its own module, loaded only when used.
import { Command, Option } from 'commander';
import { ConfigError, MfError } from '../errors.ts';
import { shutdownEngine } from '../backend/index.ts';
import type { BenchOptions } from './bench.ts';

const program = new Command();
program
  .name('mf')
  .description('Medformer and BrainFuse experiments on a WebGPU autograd engine')
  .option('--verbose', "also show the WebGPU driver's informational warnings (Dawn's adapter-limit notices)")
  .showHelpAfterError();

// Commands that start the WebGPU engine: unless --verbose, Dawn's two adapter-limit notices are kept off stderr.
const GPU_COMMANDS = new Set(['devices', 'bench', 'run', 'eval', 'predict', 'fuse', 'doctor']);
program.hook('preAction', async (_program, action) => {
  if (!GPU_COMMANDS.has(action.name())) return;
  // Before the WebGPU instance exists: lavapipe reads its thread count when the device starts.
  const { setRasteriserThreads } = await import('./threads.ts');
  setRasteriserThreads();
  if (program.opts<{ verbose?: boolean }>().verbose) return;
  const { quietDawnLimitWarnings } = await import('./quiet-dawn.ts');
  quietDawnLimitWarnings();
});

const backendOption = () => new Option('--backend <name>', 'compute backend').choices(['auto', 'webgpu', 'cpu']).default('auto');

program
  .command('devices')
  .description('list WebGPU adapters: backend, vendor, architecture, device, key limits')
  .option('--json', 'machine-readable output')
  .action(async (opts: { json?: boolean }) => {
    const { devicesCommand } = await import('./devices.ts');
    await devicesCommand(opts);
  });

program
  .command('bench')
  .description(
    'benchmarks: `kernels` (each kernel alone), `train` (a full training step) or `compile` (pipelines before the first step, cold and warm)',
  )
  .argument('[what]', 'kernels | train | compile', 'kernels')
  .option('--json', 'print JSON only')
  .option('--quick', 'fewer repetitions and smaller shapes (for smoke tests)')
  .option('--profile', 'time per kernel family (train)')
  .option('--only <config>', 'train: one configuration (small-2d, small-3d, large-2d); compile: one pass (cold, warm)')
  .option('--batch <n>', "train: batch size instead of each configuration's own")
  .option(
    '--compare <library>',
    'kernels: our matmul beside tfjs on the same device (needs the dev dependencies); train: the small-2d step beside PyTorch (torch: needs python3-torch)',
  )
  .option('--load <n>', 'train: also time the step while n CPU-bound processes compete for the cores')
  .addOption(backendOption())
  .action(async (what: string, opts: BenchOptions) => {
    const { benchCommand } = await import('./bench.ts');
    await benchCommand(what, opts);
  });

const data = program.command('data').description('MedMNIST files: list, verify, download');
data
  .command('list')
  .description('the 18 MedMNIST v2 data sets (and the synthetic ones) with present/missing files')
  .option('--data-dir <dir>', 'data root (default $MEDMNIST_ROOT, else ~/.medmnist)')
  .option('--json', 'machine-readable output')
  .action(async (opts: { dataDir?: string; json?: boolean }) => {
    const { dataList } = await import('./data.ts');
    const { resolveDataRoot } = await import('../data/dataset.ts');
    const out = dataList(resolveDataRoot(opts.dataDir));
    console.log(opts.json ? JSON.stringify(out.rows, null, 2) : out.text);
  });
data
  .command('verify')
  .description('check MD5, shapes and label ranges of the files present')
  .argument('[names...]', 'data sets to verify (default: all present)')
  .option('--data-dir <dir>', 'data root')
  .action(async (names: string[], opts: { dataDir?: string }) => {
    const { dataVerify } = await import('./data.ts');
    const { resolveDataRoot } = await import('../data/dataset.ts');
    const out = await dataVerify(resolveDataRoot(opts.dataDir), names.length ? names : undefined);
    console.log(out.text);
    if (!out.ok) process.exitCode = 1;
  });
data
  .command('download')
  .description('download an official file from Zenodo (verified by MD5; never leaves a partial file)')
  .argument('<name>', 'data set, e.g. breastmnist')
  .option('--size <px>', 'image size: 28, 64, 128 or 224', '28')
  .option('--data-dir <dir>', 'data root')
  .action(async (name: string, opts: { size: string; dataDir?: string }) => {
    const { dataDownload } = await import('./data.ts');
    const { resolveDataRoot } = await import('../data/dataset.ts');
    const r = await dataDownload(name, resolveDataRoot(opts.dataDir), Number(opts.size));
    console.log(`${r.downloaded ? 'downloaded' : 'already present'}: ${r.path} (md5 ${r.md5})`);
  });

program
  .command('run')
  .description('run an experiment file (experiments/*.json); its "kind" picks the run kind, `mf schema` lists them')
  .argument('<experiment>', 'path to the experiment JSON')
  // No parser for the numbers: run.ts checks the text as typed, so "--max-steps abc" is quoted, not "NaN".
  .option('--epochs <n>', 'override training.epochs')
  .option('--max-steps <n>', 'override training.max_steps')
  .option('--batch-size <n>', 'override training.batch_size')
  .option('--seed <n>', 'override training.seed')
  .option('--seeds <list>', 'run once per seed (e.g. 0,1,2) into <out>/seed-<s>/ and write mean ± std (overrides training.seeds)')
  .option('--data-dir <dir>', 'data root (default: experiment data.root, $MEDMNIST_ROOT, ~/.medmnist)')
  .option('--out <dir>', 'output folder (default runs/<name>)')
  .option('--resume', 'continue from the checkpoint in the output folder')
  .option('--download', 'first fetch the MedMNIST files missing from the data root (Zenodo, MD5-checked), as data.download: true')
  .option('--quiet', 'no progress bars; log lines only')
  .addOption(backendOption())
  .action(async (file: string, opts: Record<string, unknown>) => {
    const { runCommand } = await import('../train/run.ts');
    await runCommand(file, opts);
  });

program
  .command('sweep')
  .description(
    'many runs from a sweep file (sweeps/*.json): on this machine (--local), on a Redis queue for `mf worker`s (--queue), or for Slurm (--slurm); `mf sweep status <file> --queue URL` reports each run',
  )
  .argument('<sweep>', 'the sweep JSON, or "status" followed by it')
  .argument('[file]', 'with "status": the sweep JSON')
  .option('--local', 'run it here, in dependency order')
  .option('--jobs <n>', 'with --local: runs at a time', '1')
  .option('--queue <url>', 'enqueue it on Redis (redis://host:port) as BullMQ jobs; with status: read their states')
  .option('--slurm', 'write an sbatch submission script (one job array per wave) under the output root')
  .option('--sbatch <line...>', 'with --slurm: extra #SBATCH options, e.g. --sbatch=--gres=gpu:1')
  .option('--out <dir>', 'output root (default: the sweep\'s "output", else runs/sweeps/<name>)')
  .option('--data-dir <dir>', 'with --local: data root for every run')
  .option('--json', 'machine-readable summary')
  .addOption(backendOption())
  .action(async (what: string, file: string | undefined, opts: Record<string, unknown>) => {
    const { sweepCommand, sweepStatusCommand } = await import('./sweep.ts');
    if (what === 'status') {
      if (!file) throw new ConfigError('mf sweep status: name the sweep file', 'mf sweep status sweeps/x.json --queue redis://host:port');
      await sweepStatusCommand(file, opts);
    } else await sweepCommand(what, opts);
  });

program
  .command('worker')
  .description("train a sweep's runs: jobs from a Redis queue (--queue), or one run of a sweep file (--sweep --run, for Slurm tasks)")
  .option('--queue <url>', 'Redis of the sweep, redis://host:port')
  .option('--concurrency <n>', 'runs at a time on this machine', '1')
  .option('--lock-seconds <s>', "how long a job's lock lasts unrenewed: a dead worker's run is taken over after about this", '30')
  .option('--sweep <file>', 'without --queue: the sweep file')
  .option('--run <id>', 'without --queue: the run of it to train')
  .option('--data-dir <dir>', 'data root for every run')
  .addOption(backendOption())
  .action(async (opts: Record<string, unknown>) => {
    const { workerCommand } = await import('./sweep.ts');
    await workerCommand(opts);
  });

program
  .command('eval')
  .description("a trained model's official MedMNIST metrics (AUC, ACC, the majority-class baseline) on val or test")
  .argument('<model>', 'run folder (runs/<name>: the checkpoints the trainer tested) or a .safetensors model file of one')
  .option('--dataset <key>', 'one task of a multi-task model (default: every task)')
  .addOption(new Option('--split <split>', 'split to score').choices(['val', 'test']).default('test'))
  .option('--data-dir <dir>', "data root (default: the run's data.root, $MEDMNIST_ROOT, ~/.medmnist)")
  .option('--json', 'machine-readable output')
  .option(
    '--ttsa <k,r>',
    'also Test-Time Sum Augmentation: each image averaged with K-1 others of the split, scores averaged over R hybrids (K,R or K,R,SEED)',
  )
  .addOption(backendOption())
  .action(
    async (model: string, opts: { dataset?: string; split: string; dataDir?: string; json?: boolean; ttsa?: string; backend: string }) => {
      const { evalCommand } = await import('./eval.ts');
      await evalCommand(model, opts);
    },
  );

program
  .command('predict')
  .description("a trained model's class probabilities for images (PNG, JPEG), arrays (.npy, .npz) or volumes (NIfTI)")
  .argument('<model>', 'run folder (runs/<name>) or a .safetensors model file of one')
  .argument('<inputs...>', 'files to predict: .png .jpg .jpeg .npy .npz (2D or 3D models), .nii .nii.gz (3D models)')
  .option('--task <key>', 'the head to use (required when the model has several)')
  .option('--out <file>', 'also write the predictions to a .csv or .json file')
  .addOption(backendOption())
  .action(async (model: string, inputs: string[], opts: { task?: string; out?: string; backend: string }) => {
    const { predictCommand } = await import('./predict.ts');
    await predictCommand(model, inputs, opts);
  });

program
  .command('export')
  .description(
    "a trained Medformer for other frameworks: its inference graph as ONNX, or one head's PyTorch state dict (a BrainFuse interpolator: ONNX)",
  )
  .argument('<model>', 'run folder (runs/<name>) or a .safetensors model file of one')
  .addOption(new Option('--format <format>', 'what to write').choices(['onnx', 'torch']).makeOptionMandatory())
  .option('--task <key>', 'one head (default: every head for onnx; required for torch when the model has several)')
  .requiredOption('--out <file>', 'the file to write (model.onnx, model.safetensors)')
  .option('--json', 'print what was written (torch: the key mapping) as JSON')
  .action(async (model: string, opts: { format: string; task?: string; out: string; json?: boolean }) => {
    const { exportCommand } = await import('./export.ts');
    await exportCommand(model, opts);
  });

program
  .command('schema')
  .description('print the JSON Schema of experiment files (all kinds; point your editor at it)')
  .option('--kind <kind>', 'one kind only')
  .action(async (opts: { kind?: string }) => {
    const { ExperimentSchema, getKind } = await import('../kinds/index.ts');
    const kind = opts.kind === undefined ? null : getKind(opts.kind);
    if (kind === undefined) throw new ConfigError(`--kind ${opts.kind}: no such kind`, 'see mf run --help for the list');
    console.log(JSON.stringify(kind ? kind.schema : ExperimentSchema, null, 2));
  });

program
  .command('fuse')
  .description('BrainFuse: fuse two or more brain volumes along an axis (transition by a trained interpolator, --linear or --raw)')
  .argument('[volumes...]', 'NIfTI files or IXI subject ids (e.g. IXI057), fused in this order')
  .option('--axis <n>', 'axis to fuse along: 0 (L-R), 1 (P-A), 2 (I-S) of the RAS grid', '2')
  .option('--k <list>', 'seam slice(s), comma-separated, one per pair of neighbours (default: evenly spaced)')
  .option('--transition <n>', 'synthesised slices at each seam', '7')
  .option('--checkpoint <path>', 'brainfuse-interp run folder or its model.safetensors (default runs/brainfuse-interp)')
  .option('--raw', 'RawBrainFuse: plain concatenation, no transition')
  .option('--linear', 'transition by straight blending (a baseline)')
  .option('--out <path>', 'output .nii.gz (default fused.nii.gz), or folder with --count (default fused/)')
  .option('--png <file>', 'mid-slice montage (default next to the output)')
  .option('--no-png', 'write no montage')
  .option('--data-dir <dir>', 'IXI folder for subject ids, ages and --count (default $IXI_ROOT, else data/brain)')
  .option('--shape <n>', 'preprocessing grid side', '64')
  .option('--cache-dir <dir>', 'preprocessing cache (default ~/.cache/medformer/brain)')
  .option('--as-is', 'use the files as they are (same grid, no preprocessing)')
  .option('--count <n>', 'make N random fusions of pairs from --data-dir (or from the given volumes)')
  .option('--seed <n>', 'seed for --count', '0')
  .option('--threshold <x>', 'plausibility filter: largest seam step over the median slice step', '3')
  .option('--ages <list>', "ages of the given volumes, comma-separated (default: from the data folder's ixi_subjects.csv)")
  .option('--max-generation <n>', 'highest source generation that may be fused (0: real scans only)', '0')
  .option('--json', 'machine-readable output')
  .addOption(backendOption())
  .action(async (volumes: string[], opts: Record<string, unknown>) => {
    const { fuseCommand } = await import('./fuse.ts');
    await fuseCommand(volumes, opts);
  });

program
  .command('table')
  .description("print a thesis table (4.2 to 4.11, 5.1 and 5.2) next to this project's runs")
  .argument('<id>', 'table id, e.g. 4.2 or 5.1')
  .option('--runs <dir>', 'runs folder', 'runs')
  .option('--csv', 'CSV output')
  .option('--json', 'JSON output')
  .action(async (id: string, opts: { runs: string; csv?: boolean; json?: boolean }) => {
    const { tableCommand } = await import('./table.ts');
    await tableCommand(id, opts);
  });

program
  .command('serve')
  .description('a local read-only dashboard of the runs: curves, metrics, thesis tables, and the model run in the page (WebGPU)')
  .argument('[runs]', 'runs folder', 'runs')
  .option('--port <n>', 'port (0: any free one)', '8080')
  .option('--host <address>', 'address to bind', '127.0.0.1')
  .action(async (runs: string, opts: { port: string; host: string }) => {
    const { serveCommand } = await import('./serve.ts');
    await serveCommand(runs, opts);
  });

program
  .command('doctor')
  .description("check Node, the WebGPU adapter, the data root and each file's MD5, and write access to runs/")
  .option('--data-dir <dir>', 'data root')
  .option('--runs <dir>', 'runs folder', 'runs')
  .option('--json', 'machine-readable output')
  .action(async (opts: { dataDir?: string; runs?: string; json?: boolean }) => {
    const { doctorCommand } = await import('./doctor.ts');
    await doctorCommand(opts);
  });

async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    if (e instanceof MfError) {
      process.stderr.write(`error: ${e.message}\n`);
      process.exitCode = 1;
    } else {
      // A bug, not a user error: still one line, the stack only on request.
      const err = e as Error;
      process.stderr.write(`error: internal: ${err?.message ?? String(e)} (set MF_DEBUG=1 for the stack trace and report it)\n`);
      if (process.env.MF_DEBUG) process.stderr.write(`${err?.stack ?? ''}\n`);
      process.exitCode = 2;
    }
  } finally {
    shutdownEngine();
  }
}

await main();
