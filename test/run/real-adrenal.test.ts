// The shipped single-task experiment (experiments/st-small-adrenalmnist3d.json: Medformer-small, the thesis's
// recipe and 3D augmentation) on the real AdrenalMNIST3D from $MEDFORMER_SHARED_DATA, shortened to 4 epochs at seed
// 0, must beat the majority class on the official test split, not only chance. Answering the training split's most
// common class scores ACC 229/298 = 76.8% there (and AUC 0.5); a model at the class prior scores exactly that.
// Measured with this command in a clean clone (2026-12-01, lavapipe, 2 cores shared with other jobs): test AUC 0.804,
// ACC 78.5% (best validation epoch 2 of 4), 666 s; in 8-epoch runs seeds 0 and 1 were above the majority on
// validation from epoch 2 or 3 on. Bars: ACC above the majority, AUC >= 0.75 (the thesis's 0.810, Table 4.3).
// BreastMNIST does not get this check: with its 546 training images the shipped recipe sits at the class prior for
// its first 10-15 epochs (REPRODUCE.md), longer than a CI run can train; real-breast.test.ts checks it beats chance.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SHARED_SKIP, sharedData } from '../data/helpers.ts';
import { mf, ROOT, tmpDir } from './helpers.ts';

const EXPERIMENT = path.join(ROOT, 'experiments/st-small-adrenalmnist3d.json');
const CI_EPOCHS = 4;
const CI_SEED = 0;
const AUC_BAR = 0.75;
// About 6 minutes on an idle 2-core lavapipe, 11 shared with other jobs; the 3D kernels compile cold in CI.
const RUN_TIMEOUT_MS = 1_800_000;

describe(`AdrenalMNIST3D, real data${SHARED_SKIP}`, () => {
  it.skipIf(!sharedData)(
    `the shipped single-task Medformer-small, ${CI_EPOCHS} epochs at seed ${CI_SEED}, beats the majority class on the test split`,
    () => {
      const out = path.join(tmpDir('adrenal'), 'run');
      const args = ['run', EXPERIMENT, '--quiet', '--data-dir', sharedData as string, '--out', out];
      const r = mf([...args, '--epochs', String(CI_EPOCHS), '--seed', String(CI_SEED)], {}, RUN_TIMEOUT_MS);
      expect(r.status, r.stderr).toBe(0);
      const metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
      const m = metrics.adrenalmnist3d as { test: { auc: number; acc: number }; majority_acc: number; steps: number };
      // The official splits: 1,188 training volumes, 18 full batches of 64 per epoch; 298 test volumes, 229 of the
      // majority class.
      expect(m.steps).toBe(18 * CI_EPOCHS);
      expect(m.majority_acc).toBeCloseTo(229 / 298, 6);
      expect(m.test.acc).toBeGreaterThan(m.majority_acc);
      expect(m.test.auc).toBeGreaterThanOrEqual(AUC_BAR);
    },
    RUN_TIMEOUT_MS,
  );
});
