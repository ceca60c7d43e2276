// The multilayer perceptron of the thesis's backforward experiment (section 5.3, Figure 5.4): the image flattened
// (784 values for MNIST's 28×28), one hidden layer of 256 ReLU units, a linear output layer (10 classes).
// Initialisation is PyTorch's nn.Linear default: weight and bias Uniform(±1/√fan_in). Each dense layer is one layer
// group for training.update "backforward": the hidden layers from the input side, then the task heads.
import { MfError } from '../errors.ts';
import { FAN_IN, type ParamHandle, type ParamSource } from '../nn/layers.ts';
import type { Activation } from '../ops/matmul.ts';
import { linear, reshape } from '../ops/index.ts';
import type { Tensor } from '../tensor/tensor.ts';

/** The thesis's hidden widths: 784-256 (ReLU)-10. */
export const MLP_HIDDEN = [256] as const;

export interface MlpSpec {
  /** Values per sample (channels × height × width). */
  inputs: number;
  hidden: readonly number[];
  tasks: { name: string; outputs: number }[];
}

/** nn.Linear: weight [in, out] and bias [out], both Uniform(±1/√in). */
class Dense {
  readonly weight: ParamHandle;
  readonly bias: ParamHandle;
  constructor(ps: ParamSource, name: string, inDim: number, outDim: number) {
    this.weight = ps.param(`${name}.weight`, [inDim, outDim], FAN_IN);
    this.bias = ps.param(`${name}.bias`, [outDim], { kind: 'uniform', bound: 1 / Math.sqrt(inDim) });
  }
  forward(x: Tensor, act: Activation = 'none'): Tensor {
    return linear(x, this.weight.tensor, this.bias.tensor, act);
  }
  get names(): string[] {
    return [this.weight.name, this.bias.name];
  }
}

export class Mlp {
  readonly layers: Dense[] = [];
  readonly heads = new Map<string, Dense>();

  constructor(
    ps: ParamSource,
    readonly spec: MlpSpec,
  ) {
    let width = spec.inputs;
    spec.hidden.forEach((h, i) => {
      this.layers.push(new Dense(ps, `fc${i}`, width, h));
      width = h;
    });
    for (const t of spec.tasks) this.heads.set(t.name, new Dense(ps, `heads.${t.name}`, width, t.outputs));
  }

  forward(x: Tensor, task: string): Tensor {
    const head = this.heads.get(task);
    if (!head) throw new MfError(`mlp: no head for task ${task}`);
    let h = reshape(x, [x.shape[0], this.spec.inputs]);
    for (const l of this.layers) h = l.forward(h, 'relu');
    return head.forward(h);
  }

  /** Parameter names per dense layer, from the input side; the task heads together are the last group. */
  layerGroups(): string[][] {
    return [...this.layers.map((l) => l.names), [...this.heads.values()].flatMap((h) => h.names)];
  }
}
