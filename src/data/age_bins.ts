// Brain age as classification over age bins (the thesis reports top-1/3/5 accuracy), with Gaussian-smoothed
// bin labels.
import { ConfigError } from '../errors.ts';

export interface AgeBins {
  /** Bin b holds ages in [edges[b], edges[b+1]); the last bin also holds its upper edge. */
  edges: number[];
  count: number;
  /** The bin of an age; ages outside the edges go to the first/last bin (a test subject may be older than all training ones). */
  index(age: number): number;
  centre(bin: number): number;
}

/**
 * Age classification bins. The thesis treats brain age as classification over age bins (reporting top-1/3/5
 * accuracy) with smoothed bin labels; default: 5-year bins from 20 to 90 (14 bins), which cover IXI (20–86).
 */
export function ageBins(spec: readonly number[] | { min: number; max: number; width: number } = { min: 20, max: 90, width: 5 }): AgeBins {
  let edges: number[];
  if (Array.isArray(spec)) edges = [...(spec as readonly number[])];
  else {
    const { min, max, width } = spec as { min: number; max: number; width: number };
    if (!(width > 0) || !(max > min) || !Number.isFinite(min) || !Number.isFinite(max)) {
      throw new ConfigError(`age bins {min: ${min}, max: ${max}, width: ${width}} need min < max and width > 0`);
    }
    const n = Math.ceil((max - min) / width - 1e-9);
    edges = Array.from({ length: n + 1 }, (_, i) => Math.min(max, min + i * width));
  }
  if (edges.length < 2 || !edges.every((e, i) => Number.isFinite(e) && (i === 0 || e > edges[i - 1]!))) {
    throw new ConfigError(`age bin edges [${edges.join(', ')}] must be at least 2 increasing numbers`);
  }
  const count = edges.length - 1;
  return {
    edges,
    count,
    index(age: number): number {
      if (!Number.isFinite(age)) throw new ConfigError(`age ${age} is not a number`);
      let b = 0;
      while (b < count - 1 && age >= edges[b + 1]!) b++;
      return b;
    },
    centre: (bin: number) => (edges[bin]! + edges[bin + 1]!) / 2,
  };
}

/**
 * A soft target for bin `bin`: a Gaussian over bin indices with std `sigma` bins, summing to 1, so a
 * prediction one bin off is penalised less than one five bins off. sigma 0 gives one-hot. Default sigma 1.
 */
export function smoothBinLabels(bin: number, numBins: number, sigma = 1): Float32Array {
  if (!Number.isInteger(numBins) || numBins < 1 || !Number.isInteger(bin) || bin < 0 || bin >= numBins) {
    throw new ConfigError(`bin ${bin} is not one of ${numBins} bins`);
  }
  if (!(sigma >= 0)) throw new ConfigError(`label smoothing sigma ${sigma} must be >= 0`);
  const out = new Float32Array(numBins);
  if (sigma === 0) {
    out[bin] = 1;
    return out;
  }
  let sum = 0;
  for (let i = 0; i < numBins; i++) sum += out[i] = Math.exp(-((i - bin) ** 2) / (2 * sigma * sigma));
  for (let i = 0; i < numBins; i++) out[i]! /= sum;
  return out;
}
