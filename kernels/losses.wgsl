// Fused losses that return the mean as a scalar, each with a fused backward.
// Forward entries (ce_forward, bce_forward, mse_forward) compute one loss term per invocation and
// reduce each workgroup's terms in workgroup memory to Out[workgroup] (a partial sum); `finish` then
// sums those NP partials in one workgroup and scales by SCALE = 1/count. Two dispatches per loss, no
// atomics, and the order of additions is fixed, so a loss is bit-for-bit repeatable.
// Backward entries write one gradient element per invocation, reading the upstream scalar gradient
// from Gs[0] and scaling by SCALE (1/count, or 2/count for MSE).
// Constants: N rows and C classes (cross-entropy), NE elements (BCE, MSE), NP partials (finish);
// fconst SCALE.
// Cross-entropy labels outside [0, C) are clamped into range: checking them on the host would need a
// read-back each step, and an out-of-range label must never become an out-of-bounds read. The data
// loader validates labels against the data set's registry entry, so clamping only guards the kernel.
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Labels: array<i32>;
@group(0) @binding(2) var<storage, read> T: array<f32>;
@group(0) @binding(3) var<storage, read> Aux: array<f32>;
@group(0) @binding(4) var<storage, read> Gs: array<f32>;
@group(0) @binding(5) var<storage, read_write> Out: array<f32>;
@group(0) @binding(6) var<storage, read_write> Out2: array<f32>;

const WG: u32 = 64u;

var<workgroup> red: array<f32, WG>;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

// Sums red into red[0] (pairs at distance WG/2, WG/4, ..., 1); call from uniform control flow.
fn tree(l: u32) {
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    workgroupBarrier();
    if (l < s) { red[l] += red[l + s]; }
  }
  workgroupBarrier();
}

fn partial(v: f32, l: u32, wid: vec3<u32>, nwg: vec3<u32>) {
  red[l] = v;
  tree(l);
  if (l == 0u) { Out[wid.x + wid.y * nwg.x] = red[0]; }
}

fn label_of(i: u32) -> u32 { return u32(clamp(Labels[i], 0, i32(C) - 1)); }

// log sum_j exp(x[base + j]) over a row of C logits, shifted by the row's maximum.
fn row_lse(base: u32) -> f32 {
  var m = X[base];
  for (var j = 1u; j < C; j++) { m = max(m, X[base + j]); }
  var s = 0.0;
  for (var j = 0u; j < C; j++) { s += exp(X[base + j] - m); }
  return m + log(s);
}

// Loss term lse_i - x[i, y_i]; Out2[i] = lse_i, kept for the backward.
@compute @workgroup_size(WG)
fn ce_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) l: u32) {
  let i = flat(gid, nwg);
  var v = 0.0;
  if (i < N) {
    let base = i * C;
    let lse = row_lse(base);
    v = lse - X[base + label_of(i)];
    Out2[i] = lse;
  }
  partial(v, l, wid, nwg);
}

// Soft-target cross-entropy (thesis 5.4.3, sum-augmented targets): loss term sum_j t_ij (lse_i - x_ij) =
// lse_i * sum_j t_ij - sum_j t_ij x_ij, with T [N, C] the target probabilities; Out2[i] = lse_i for the backward.
@compute @workgroup_size(WG)
fn soft_ce_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) l: u32) {
  let i = flat(gid, nwg);
  var v = 0.0;
  if (i < N) {
    let base = i * C;
    let lse = row_lse(base);
    for (var j = 0u; j < C; j++) { v += T[base + j] * (lse - X[base + j]); }
    Out2[i] = lse;
  }
  partial(v, l, wid, nwg);
}

// Stable form of -t log(sigmoid(x)) - (1 - t) log(1 - sigmoid(x)).
@compute @workgroup_size(WG)
fn bce_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) l: u32) {
  let e = flat(gid, nwg);
  var v = 0.0;
  if (e < NE) {
    let x = X[e];
    v = (max(x, 0.0) - x * T[e]) + log(1.0 + exp(-abs(x)));
  }
  partial(v, l, wid, nwg);
}

@compute @workgroup_size(WG)
fn mse_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) l: u32) {
  let e = flat(gid, nwg);
  var v = 0.0;
  if (e < NE) {
    let d = X[e] - T[e];
    v = d * d;
  }
  partial(v, l, wid, nwg);
}

// Aux holds the NP partial sums; Out[0] = SCALE * their sum.
@compute @workgroup_size(WG)
fn finish(@builtin(local_invocation_index) l: u32) {
  var acc = 0.0;
  for (var i = l; i < NP; i += WG) { acc += Aux[i]; }
  red[l] = acc;
  tree(l);
  if (l == 0u) { Out[0] = red[0] * SCALE; }
}

// d mean_i(loss_i) / d x[i, j] = (softmax_ij - [j == y_i]) * g / N, softmax from the saved lse (Aux).
@compute @workgroup_size(WG)
fn ce_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = flat(gid, nwg);
  if (e >= N * C) { return; }
  let i = e / C;
  var p = exp(X[e] - Aux[i]);
  if (e % C == label_of(i)) { p -= 1.0; }
  Out[e] = p * Gs[0] * SCALE;
}

// d/dx[i, j] = (softmax_ij * sum_k t_ik - t_ij) * g / N, softmax from the saved lse (Aux).
@compute @workgroup_size(WG)
fn soft_ce_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = flat(gid, nwg);
  if (e >= N * C) { return; }
  let i = e / C;
  var mass = 0.0;
  for (var j = 0u; j < C; j++) { mass += T[i * C + j]; }
  Out[e] = (exp(X[e] - Aux[i]) * mass - T[e]) * Gs[0] * SCALE;
}

fn sigmoid(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let z = exp(x);
  return z / (1.0 + z);
}

// (sigmoid(x) - t) * g / NE.
@compute @workgroup_size(WG)
fn bce_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = flat(gid, nwg);
  if (e >= NE) { return; }
  Out[e] = (sigmoid(X[e]) - T[e]) * Gs[0] * SCALE;
}

// 2 (x - t) g / NE with SCALE = 2 / NE. The gradient for t alone is this entry with X and T swapped.
@compute @workgroup_size(WG)
fn mse_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = flat(gid, nwg);
  if (e >= NE) { return; }
  Out[e] = (X[e] - T[e]) * Gs[0] * SCALE;
}

// Both gradients at once: Out for x, Out2 = -Out for t.
@compute @workgroup_size(WG)
fn mse_backward2(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = flat(gid, nwg);
  if (e >= NE) { return; }
  let d = (X[e] - T[e]) * Gs[0] * SCALE;
  Out[e] = d;
  Out2[e] = -d;
}
