// Scalar activation functions shared by the CPU references, written exactly as the WGSL does.

export function gelu(x: number): number {
  const u = Math.min(15, Math.max(-15, 0.7978845608028654 * (x + 0.044715 * x * x * x)));
  return 0.5 * x * (1 + Math.tanh(u));
}

/** d gelu(x) / dx for the tanh form (the clamp's flat region has zero derivative of the tanh term). */
export function geluGrad(x: number): number {
  const raw = 0.7978845608028654 * (x + 0.044715 * x * x * x);
  const u = Math.min(15, Math.max(-15, raw));
  const t = Math.tanh(u);
  const du = raw === u ? 0.7978845608028654 * (1 + 3 * 0.044715 * x * x) : 0;
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du;
}

export const sigmoid = (x: number): number => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));
