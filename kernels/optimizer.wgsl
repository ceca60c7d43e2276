// AdamW over a whole parameter arena in one dispatch, the squared gradient norm it clips by, and the guard
// between them that lets a step with a non-finite loss or gradient skip its update on the device.
// The arenas are runs of 64-float blocks and every parameter starts on a block boundary (the 256-byte
// view alignment), so one u32 per block describes every element: bit 0 trainable, bit 1 weight decay.
// Padding between parameters is zero in the parameter, gradient and moment arenas and stays zero.
// Constants: N4 (arena floats / 4); norm_partial CHUNK4 (vec4s per workgroup); norm_final NPART.
// Uniforms (adamw): [lr, beta1, beta2, eps], [weight_decay, 1-beta1^t, 1-beta2^t, max_grad_norm (0: off)].
// Uniforms (sgd): [lr, weight_decay, max_grad_norm (0: off), unused], [unused x4].
// The norm buffer (Out in the norm entries and guard, S in adamw) holds [squared norm, update flag].
@group(0) @binding(0) var<storage, read> G: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> Mask: array<u32>;
@group(0) @binding(2) var<storage, read> S: array<f32>;
@group(0) @binding(3) var<storage, read_write> P: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> M: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> V: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> Out: array<f32>;
@group(0) @binding(7) var<storage, read> L: array<f32>;
@group(0) @binding(8) var<storage, read_write> H: array<u32>;
@group(1) @binding(0) var<uniform> U: array<vec4<f32>, 2>;

const WG: u32 = 256u;
const BLOCK4: u32 = 16u;

var<workgroup> red: array<f32, WG>;

// Fixed pairing order (t with t+s, halving s) so the sum is the same on every run and on the CPU.
fn tree_sum(t: u32) -> f32 {
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (t < s) { red[t] = red[t] + red[t + s]; }
    workgroupBarrier();
  }
  return red[0];
}

// Stage 1: workgroup w sums g^2 over its chunk of trainable elements into Out[w].
@compute @workgroup_size(WG)
fn norm_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let start = wid.x * CHUNK4;
  let end = min(start + CHUNK4, N4);
  var acc = vec4<f32>(0.0);
  for (var i = start + t; i < end; i += WG) {
    let g = G[i];
    let on = (Mask[i / BLOCK4] & 1u) != 0u;
    acc = acc + select(vec4<f32>(0.0), g * g, on);
  }
  red[t] = (acc.x + acc.y) + (acc.z + acc.w);
  let total = tree_sum(t);
  if (t == 0u) { Out[wid.x] = total; }
}

// Stage 2: one workgroup sums the NPART partials into Out[0].
@compute @workgroup_size(WG)
fn norm_final(@builtin(local_invocation_index) t: u32) {
  var acc = 0.0;
  for (var i = t; i < NPART; i += WG) { acc = acc + S[i]; }
  red[t] = acc;
  let total = tree_sum(t);
  if (t == 0u) { Out[0] = total; }
}

// NaN and +-Inf have every exponent bit set. A bit test, because WGSL has no isnan and compilers may fold x != x.
fn is_finite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

// After norm_final: the update flag Out[1] is 1 when the loss L[0] and the squared norm Out[0] are finite, else 0.
// H counts on the device so that no step waits for a read: H[0] steps guarded, H[1] bad steps, H[2] and H[3]
// the count H[0] at the first and at the last bad step (0: none yet). The host reads H when it logs.
@compute @workgroup_size(1)
fn guard() {
  let ok = is_finite(Out[0]) && is_finite(L[0]);
  Out[1] = select(0.0, 1.0, ok);
  let n = H[0] + 1u;
  H[0] = n;
  if (!ok) {
    H[1] = H[1] + 1u;
    if (H[2] == 0u) { H[2] = n; }
    H[3] = n;
  }
}

// PyTorch's AdamW arithmetic: p *= 1 - lr*wd; m, v updated; p -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps).
@compute @workgroup_size(WG)
fn adamw(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N4) { return; }
  let mk = Mask[i / BLOCK4];
  // A step the guard refused changes nothing: parameters and moments stay as they were.
  if ((mk & 1u) == 0u || S[1] == 0.0) { return; }
  let lr = U[0].x;
  let b1 = U[0].y;
  let b2 = U[0].z;
  let eps = U[0].w;
  let wd = U[1].x;
  let bc1 = U[1].y;
  let bc2 = U[1].z;
  let max_norm = U[1].w;
  // The clip factor is recomputed per invocation from the stage-2 sum so the step needs no readback.
  var clip = 1.0;
  if (max_norm > 0.0) { clip = min(1.0, max_norm / (sqrt(S[0]) + 1e-6)); }
  let g = G[i] * clip;
  let m = b1 * M[i] + (1.0 - b1) * g;
  let v = b2 * V[i] + (1.0 - b2) * (g * g);
  var p = P[i];
  if ((mk & 2u) != 0u) { p = p * (1.0 - lr * wd); }
  let denom = sqrt(v) / sqrt(bc2) + eps;
  p = p - (lr / bc1) * (m / denom);
  M[i] = m;
  V[i] = v;
  P[i] = p;
}

// Plain SGD without momentum (thesis 5.3's optimiser): p *= 1 - lr*wd where the decay bit is set; p -= lr * clip * g.
// Without momentum PyTorch's L2 weight decay (g += wd*p) is this same update.
@compute @workgroup_size(WG)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N4) { return; }
  let mk = Mask[i / BLOCK4];
  if ((mk & 1u) == 0u || S[1] == 0.0) { return; }
  let lr = U[0].x;
  let wd = U[0].y;
  let max_norm = U[0].z;
  var clip = 1.0;
  if (max_norm > 0.0) { clip = min(1.0, max_norm / (sqrt(S[0]) + 1e-6)); }
  var p = P[i];
  if ((mk & 2u) != 0u) { p = p * (1.0 - lr * wd); }
  P[i] = p - lr * (G[i] * clip);
}

// SGD with momentum, torch.optim.SGD's arithmetic (dampening 0): d = clip*g, plus wd*p where the decay bit is set
// (L2 decay folded into the gradient, as PyTorch does; with momentum it is no longer the same as shrinking p);
// buf = mu*buf + d; p -= lr * (d + mu*buf) with Nesterov, lr * buf without. M holds the momentum buffers; PyTorch
// starts buf at d on the first step, which mu*0 + d is.
// Uniforms: [lr, weight_decay, max_grad_norm (0: off), momentum], [nesterov (1 or 0), unused x3].
@compute @workgroup_size(WG)
fn sgd_momentum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N4) { return; }
  let mk = Mask[i / BLOCK4];
  if ((mk & 1u) == 0u || S[1] == 0.0) { return; }
  let lr = U[0].x;
  let wd = U[0].y;
  let max_norm = U[0].z;
  let mu = U[0].w;
  var clip = 1.0;
  if (max_norm > 0.0) { clip = min(1.0, max_norm / (sqrt(S[0]) + 1e-6)); }
  let p = P[i];
  var d = G[i] * clip;
  if ((mk & 2u) != 0u) { d = d + wd * p; }
  let buf = mu * M[i] + d;
  var step = buf;
  if (U[1].x != 0.0) { step = d + mu * buf; }
  M[i] = buf;
  P[i] = p - lr * step;
}
