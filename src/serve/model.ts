// A run's model as the page of `mf serve` runs it: the description `mf predict` rebuilds it from (readModel:
// config.json and the best-* weights, checked on the host), each head with what its inputs must become and its
// label names, and the weights as one float32 block in the order the description lists them.
import { headTask, inputSize, type ModelDescription, readModel } from '../cli/load-model.ts';
import type { InputShape } from '../data/model-input.ts';
import { datasetInfo } from '../data/lookup.ts';
import type { DatasetInfo } from '../data/registry.ts';
import type { HeadDescription } from '../kinds/medformer/trainer.ts';
import type { BatchMeta } from '../models/medformer.ts';

/** One head of the page's model. */
export interface PageHead extends HeadDescription {
  labels: string[];
  /** The head's data set as the server knows it (MedMNIST, MNIST, CIFAR): what its scores mean, in the page. */
  dataset: DatasetInfo;
  /** What an input must become for this head (mf predict's InputShape). */
  want: InputShape;
  /** The batch conditioning the head's inputs carry. */
  meta: BatchMeta;
  /** The weights the head is scored with: their file in the run folder, and each tensor's name and shape in order. */
  weights: { file: string; tensors: { name: string; shape: number[] }[] };
}

export interface PageModel {
  name: string;
  kind: string;
  model: ModelDescription['model'];
  inputs: ModelDescription['inputs'];
  heads: PageHead[];
}

/** The run's model for the page, and the float32 weights of each head (keyed as `heads[].key`). */
export function pageModel(dir: string): { model: PageModel; weights: Map<string, Float32Array> } {
  const source = readModel(dir);
  const d = source.description;
  const weights = new Map<string, Float32Array>();
  const heads = d.heads.map((h): PageHead => {
    const w = source.weights.get(h.key)!;
    const tensors = [...w.tensors].map(([name, t]) => ({ name, shape: t.shape, data: t.data }));
    const block = new Float32Array(tensors.reduce((n, t) => n + t.data.length, 0));
    let at = 0;
    for (const t of tensors) {
      block.set(t.data, at);
      at += t.data.length;
    }
    weights.set(h.key, block);
    const dataset = datasetInfo(h.key);
    return {
      ...h,
      labels: [...dataset.labels],
      dataset,
      want: { dim: h.dim, channels: h.channels, size: inputSize(d, h) },
      meta: headTask(h).meta,
      weights: { file: w.file.split(/[\\/]/).pop()!, tensors: tensors.map(({ name, shape }) => ({ name, shape })) },
    };
  });
  return { model: { name: d.name, kind: d.kind, model: d.model, inputs: d.inputs, heads }, weights };
}
