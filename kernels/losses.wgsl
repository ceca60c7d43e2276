// Fused losses. Cross-entropy: per-row loss and log-sum-exp forward, per-element gradient backward.
// Sigmoid BCE with logits: per-element loss forward, per-element gradient backward.
// Constants: N (rows), C (classes) for cross-entropy; NE (elements) and SCALE_INV (1/count) for BCE.
// Labels outside [0, C) are clamped: the host cannot check them without a read-back, and the data
// loader already validates label ranges against the data set's registry entry.
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Labels: array<i32>;
@group(0) @binding(2) var<storage, read> Aux: array<f32>;
@group(0) @binding(3) var<storage, read_write> Out: array<f32>;
@group(0) @binding(4) var<storage, read_write> Out2: array<f32>;

const WG: u32 = 64u;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

fn label_of(i: u32) -> u32 { return u32(clamp(Labels[i], 0, i32(C) - 1)); }

// Out[i] = lse_i - x[i, y_i]; Out2[i] = lse_i.
@compute @workgroup_size(WG)
fn ce_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= N) { return; }
  let base = i * C;
  var m = X[base];
  for (var j = 1u; j < C; j++) { m = max(m, X[base + j]); }
  var s = 0.0;
  for (var j = 0u; j < C; j++) { s += exp(X[base + j] - m); }
  let lse = m + log(s);
  Out[i] = lse - X[base + label_of(i)];
  Out2[i] = lse;
}

// d mean_i(loss_i) / d x[i, j] = (softmax_ij - [j == y_i]) * g / N, with Aux = lse and the upstream
// scalar g in Out2[0] (bound read-write only because that is the slot free in this layout).
@compute @workgroup_size(WG)
fn ce_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = flat(gid, nwg);
  if (e >= N * C) { return; }
  let i = e / C;
  let j = e % C;
  var p = exp(X[e] - Aux[i]);
  if (j == label_of(i)) { p -= 1.0; }
  Out[e] = p * Out2[0] / f32(N);
}

// Stable BCE with logits: max(x, 0) - x t + log(1 + exp(-|x|)); Aux holds the targets t.
@compute @workgroup_size(WG)
fn bce_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = flat(gid, nwg);
  if (e >= NE) { return; }
  let x = X[e];
  Out[e] = max(x, 0.0) - x * Aux[e] + log(1.0 + exp(-abs(x)));
}

// (sigmoid(x) - t) * g / count; Out2 carries g in element 0 (read-write only because of its binding slot).
@compute @workgroup_size(WG)
fn bce_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = flat(gid, nwg);
  if (e >= NE) { return; }
  let x = X[e];
  var s: f32;
  if (x >= 0.0) { s = 1.0 / (1.0 + exp(-x)); } else { let z = exp(x); s = z / (1.0 + z); }
  Out[e] = (s - Aux[e]) * Out2[0] * SCALE_INV;
}
