// Layers as small objects that own named parameters and a forward function. Parameters are declared
// up front (so one arena holds them all) and read through handles once the store is finalised.
import { attention } from '../ops/attention.ts';
import { add, affine, div, linear, mean, mul, relu, sqrt, square, sub, type Activation } from '../ops/index.ts';
import { layerNorm } from '../ops/layernorm.ts';
import type { Tensor } from '../tensor/tensor.ts';
import type { ParamHandle, ParamInit, ParamSource } from './param.ts';

export type { ParamHandle, ParamSource };

/** How a parameter starts: the parameter store's initialisers. */
export type Init = ParamInit;

export const ZEROS: Init = { kind: 'zeros' };
export const ONES: Init = { kind: 'ones' };
/** ViT/timm's default for weights, position tables and learned tokens. */
export const TRUNC02: Init = { kind: 'trunc_normal', std: 0.02 };
/**
 * PyTorch's default for nn.Linear / nn.Conv weights, Uniform(±1/sqrt(fan_in)): used for every linear
 * layer and the patch embedding. The thesis does not print its initialisation; with ViT's trunc_normal(0.02)
 * here instead, Medformer-small sat at the class prior on BreastMNIST (full batch on 64 images, the loss
 * stayed at 0.5445 for 100 steps; with this init it fell to 0.012), because the per-sample signal that
 * crosses the input Adaptformer's near-uniform first attention was too weak (test/models/trainability.test.ts).
 */
export const FAN_IN: Init = { kind: 'fan_in_uniform' };

export class Linear {
  readonly weight: ParamHandle;
  readonly bias: ParamHandle | null;
  constructor(
    ps: ParamSource,
    name: string,
    readonly inDim: number,
    readonly outDim: number,
    withBias = true,
  ) {
    this.weight = ps.param(`${name}.weight`, [inDim, outDim], FAN_IN);
    this.bias = withBias ? ps.param(`${name}.bias`, [outDim], ZEROS) : null;
  }
  forward(x: Tensor, act: Activation = 'none'): Tensor {
    return linear(x, this.weight.tensor, this.bias?.tensor ?? null, act);
  }
}

export class LayerNorm {
  readonly gamma: ParamHandle;
  readonly beta: ParamHandle;
  constructor(
    ps: ParamSource,
    name: string,
    dim: number,
    readonly eps = 1e-5,
  ) {
    this.gamma = ps.param(`${name}.weight`, [dim], ONES);
    this.beta = ps.param(`${name}.bias`, [dim], ZEROS);
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.gamma.tensor, this.beta.tensor, this.eps);
  }
}

/** Two-layer MLP with GELU fused into the first matmul's epilogue. */
export class Mlp {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(ps: ParamSource, name: string, dim: number, hidden: number, outDim = dim) {
    this.fc1 = new Linear(ps, `${name}.fc1`, dim, hidden);
    this.fc2 = new Linear(ps, `${name}.fc2`, hidden, outDim);
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.fc1.forward(x, 'gelu'));
  }
}

/**
 * Multi-head attention. Queries come from `x`, keys and values from `context` (itself for self-attention),
 * which may have another width: all three are projected to `dim` and split into `heads` slices.
 */
export class Attention {
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly out: Linear;
  constructor(
    ps: ParamSource,
    name: string,
    dim: number,
    readonly heads: number,
    contextDim = dim,
  ) {
    this.q = new Linear(ps, `${name}.q`, dim, dim);
    this.k = new Linear(ps, `${name}.k`, contextDim, dim);
    this.v = new Linear(ps, `${name}.v`, contextDim, dim);
    this.out = new Linear(ps, `${name}.proj`, dim, dim);
  }
  forward(x: Tensor, context: Tensor = x): Tensor {
    const o = attention(this.q.forward(x), this.k.forward(context), this.v.forward(context), this.heads);
    return this.out.forward(o);
  }
}

/** Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x)). */
export class Block {
  readonly norm1: LayerNorm;
  readonly attn: Attention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  constructor(ps: ParamSource, name: string, dim: number, heads: number, mlpRatio: number) {
    this.norm1 = new LayerNorm(ps, `${name}.norm1`, dim);
    this.attn = new Attention(ps, `${name}.attn`, dim, heads);
    this.norm2 = new LayerNorm(ps, `${name}.norm2`, dim);
    this.mlp = new Mlp(ps, `${name}.mlp`, dim, Math.round(dim * mlpRatio));
  }
  forward(x: Tensor): Tensor {
    const h = add(x, this.attn.forward(this.norm1.forward(x)));
    return add(h, this.mlp.forward(this.norm2.forward(h)));
  }
}

/**
 * Pre-norm cross-attention block: queries (latents) attend a context (tokens), then an MLP.
 * The context is normalised too, as in Perceiver.
 */
export class CrossBlock {
  readonly normQ: LayerNorm;
  readonly normCtx: LayerNorm;
  readonly attn: Attention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  constructor(ps: ParamSource, name: string, dim: number, contextDim: number, heads: number, mlpRatio: number) {
    this.normQ = new LayerNorm(ps, `${name}.norm_q`, dim);
    this.normCtx = new LayerNorm(ps, `${name}.norm_ctx`, contextDim);
    this.attn = new Attention(ps, `${name}.attn`, dim, heads, contextDim);
    this.norm2 = new LayerNorm(ps, `${name}.norm2`, dim);
    this.mlp = new Mlp(ps, `${name}.mlp`, dim, Math.round(dim * mlpRatio));
  }
  forward(queries: Tensor, context: Tensor): Tensor {
    const h = add(queries, this.attn.forward(this.normQ.forward(queries), this.normCtx.forward(context)));
    return add(h, this.mlp.forward(this.norm2.forward(h)));
  }
}

/**
 * BatchNorm over the batch dimension of [N, D] in training mode (batch statistics), as VICReg's
 * expander uses it. Composed from differentiable ops; no running averages, since the expander is
 * discarded after pre-training.
 */
export class BatchNorm1d {
  readonly gamma: ParamHandle;
  readonly beta: ParamHandle;
  constructor(
    ps: ParamSource,
    name: string,
    dim: number,
    readonly eps = 1e-5,
  ) {
    this.gamma = ps.param(`${name}.weight`, [dim], ONES);
    this.beta = ps.param(`${name}.bias`, [dim], ZEROS);
  }
  forward(x: Tensor): Tensor {
    const xc = sub(x, mean(x, 0, true));
    const variance = mean(square(xc), 0, true);
    const xhat = div(xc, sqrt(affine(variance, 1, this.eps)));
    return add(mul(xhat, this.gamma.tensor), this.beta.tensor);
  }
}

/** VICReg's expander: Linear-BN-ReLU blocks, the last layer linear. */
export class Expander {
  readonly layers: Linear[] = [];
  readonly norms: BatchNorm1d[] = [];
  constructor(ps: ParamSource, name: string, inDim: number, widths: readonly number[]) {
    let d = inDim;
    widths.forEach((w, i) => {
      this.layers.push(new Linear(ps, `${name}.${i}`, d, w));
      if (i < widths.length - 1) this.norms.push(new BatchNorm1d(ps, `${name}.bn${i}`, w));
      d = w;
    });
  }
  forward(x: Tensor): Tensor {
    let h = x;
    this.layers.forEach((l, i) => {
      h = l.forward(h);
      if (i < this.norms.length) h = relu(this.norms[i].forward(h));
    });
    return h;
  }
}
