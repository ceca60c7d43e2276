// The thesis's brain-age figures, which the study's report sets next to its own.

export const THESIS_CITATION = 'Simionescu, C. (2025), PhD thesis, Alexandru Ioan Cuza University of Iasi';

/**
 * The BrainFuse brain-age table: IXI age-bin classification, 3 runs each, mean ± std, percent. From
 * Simionescu, C. (2025), PhD thesis, Alexandru Ioan Cuza University of Iasi, section 5.1 (as transcribed
 * in the project's reference tables, `brainfuse_table`).
 */
export const THESIS_BRAINAGE: Readonly<Record<string, Record<'top1' | 'top3' | 'top5', readonly [number, number]>>> = {
  NT: { top1: [32.1, 0.27], top3: [53.8, 0.18], top5: [64.21, 0.32] },
  'NT+BT': { top1: [40.1, 0.77], top3: [62.8, 0.11], top5: [73.01, 0.1] },
  'NT+BT+BrainFuse': { top1: [50.11, 0.3], top3: [71.16, 0.12], top5: [82.9, 0.22] },
  'NT+BT+RawBrainFuse': { top1: [45.1, 0.94], top3: [67.5, 0.41], top5: [80.01, 0.1] },
  'NT+BT+BrainFuse+ConsistencyReg': { top1: [51.4, 0.84], top3: [72.1, 0.61], top5: [83.8, 0.52] },
  'NT+BT+RawBrainFuse+ConsistencyReg': { top1: [46.6, 0.9], top3: [68.8, 0.78], top5: [81.1, 0.31] },
};

export const THESIS_ARMS = Object.keys(THESIS_BRAINAGE);
