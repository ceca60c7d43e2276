// Softmax and log-softmax over the last dimension of x [ROWS, D], with their backward rules.
// Constants: ROWS, D. One invocation per row: the rows this project normalises are short (class logits),
// and on lavapipe an invocation per row beats a workgroup per row with a shared-memory tree several
// times over (see kernels/layernorm.wgsl). Every row is max-subtracted, so logits of any size give
// finite results.
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read_write> Out: array<f32>;

const WG: u32 = 64u;

fn row_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

fn row_max(base: u32) -> f32 {
  var m = X[base];
  for (var j = 1u; j < D; j++) { m = max(m, X[base + j]); }
  return m;
}

// Out holds exp(x - max) until the sum is known: one exp per element instead of two.
@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = row_id(gid, nwg);
  if (r >= ROWS) { return; }
  let base = r * D;
  let m = row_max(base);
  var s = 0.0;
  for (var j = 0u; j < D; j++) {
    let e = exp(X[base + j] - m);
    Out[base + j] = e;
    s += e;
  }
  let inv = 1.0 / s;
  for (var j = 0u; j < D; j++) { Out[base + j] = Out[base + j] * inv; }
}

// (x - max) - log(sum): subtracting the max first keeps the difference exact for the largest logits.
@compute @workgroup_size(WG)
fn log_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = row_id(gid, nwg);
  if (r >= ROWS) { return; }
  let base = r * D;
  let m = row_max(base);
  var s = 0.0;
  for (var j = 0u; j < D; j++) { s += exp(X[base + j] - m); }
  let ls = log(s);
  for (var j = 0u; j < D; j++) { Out[base + j] = (X[base + j] - m) - ls; }
}

// X holds the saved softmax y: dx = y * (g - sum(g * y)).
@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = row_id(gid, nwg);
  if (r >= ROWS) { return; }
  let base = r * D;
  var dot = 0.0;
  for (var j = 0u; j < D; j++) { dot += G[base + j] * X[base + j]; }
  for (var j = 0u; j < D; j++) { Out[base + j] = X[base + j] * (G[base + j] - dot); }
}

// X holds the saved log-softmax: dx = g - softmax * sum(g), softmax recovered as exp(log-softmax).
@compute @workgroup_size(WG)
fn log_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = row_id(gid, nwg);
  if (r >= ROWS) { return; }
  let base = r * D;
  var sg = 0.0;
  for (var j = 0u; j < D; j++) { sg += G[base + j]; }
  for (var j = 0u; j < D; j++) { Out[base + j] = G[base + j] - exp(X[base + j]) * sg; }
}
