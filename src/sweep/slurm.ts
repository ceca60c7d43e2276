// `mf sweep <file> --slurm`: a script that submits the sweep to Slurm as one job array per wave, each array held
// until the previous one has succeeded (--dependency=afterok), each task running `mf worker --sweep <file> --run
// <run>` for its one run (resumed from its checkpoint when Slurm requeues or reruns it). Nothing here talks to
// Slurm; the script is plain bash and sbatch.
import { waves, type SweepPlan } from './plan.ts';

export interface SlurmOptions {
  /** The sweep file as the cluster's nodes will see it. */
  sweepFile: string;
  /** The checkout the tasks run in. */
  repo: string;
  /** Extra #SBATCH lines, e.g. ["--gres=gpu:1", "--time=12:00:00"]. */
  sbatch?: string[];
}

const quote = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

export function slurmScript(plan: SweepPlan, opts: SlurmOptions): string {
  const lines = [
    '#!/bin/bash',
    `# The sweep ${plan.name} (${plan.file}) on Slurm: ${plan.runs.length} runs in ${waves(plan).length} waves, one job array per wave.`,
    '# Written by `mf sweep --slurm`; submit it with bash (it calls sbatch). Output root (a shared filesystem):',
    `#   ${plan.output}`,
    'set -euo pipefail',
    `cd ${quote(opts.repo)}`,
    'previous=""',
  ];
  waves(plan).forEach((wave, k) => {
    const header = [
      `#SBATCH --job-name=${plan.name}-wave${k}`,
      `#SBATCH --array=0-${wave.length - 1}`,
      `#SBATCH --output=${plan.output}/.sweep/slurm-%A_%a.log`,
    ];
    for (const extra of opts.sbatch ?? []) header.push(`#SBATCH ${extra}`);
    lines.push(
      '',
      `# wave ${k}: ${wave.map((r) => r.id).join(' ')}`,
      `previous=$(sbatch --parsable \${previous:+--dependency=afterok:$previous} <<EOF`,
      '#!/bin/bash',
      ...header,
      // Run ids are one safe path segment each (RunName): no quoting needed inside the array.
      `runs=(${wave.map((r) => r.id).join(' ')})`,
      `cd ${quote(opts.repo)}`,
      `exec npx mf worker --sweep ${quote(opts.sweepFile)} --run "\\\${runs[\\$SLURM_ARRAY_TASK_ID]}"`,
      'EOF',
      ')',
      `echo "wave ${k}: job array $previous (${wave.length} runs)"`,
    );
  });
  return `${lines.join('\n')}\n`;
}
