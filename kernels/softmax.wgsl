// Softmax over the last dimension: one invocation per row, max-subtracted for stability.
// Constants: ROWS, D.
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read_write> Out: array<f32>;

const WG: u32 = 64u;

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = gid.x + gid.y * nwg.x * WG;
  if (r >= ROWS) { return; }
  let base = r * D;
  var m = X[base];
  for (var j = 1u; j < D; j++) { m = max(m, X[base + j]); }
  var s = 0.0;
  for (var j = 0u; j < D; j++) {
    let e = exp(X[base + j] - m);
    Out[base + j] = e;
    s += e;
  }
  let inv = 1.0 / s;
  for (var j = 0u; j < D; j++) { Out[base + j] = Out[base + j] * inv; }
}

// X holds the softmax output y, G the upstream gradient: dx = y * (g - sum(g * y)).
@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = gid.x + gid.y * nwg.x * WG;
  if (r >= ROWS) { return; }
  let base = r * D;
  var dot = 0.0;
  for (var j = 0u; j < D; j++) { dot += G[base + j] * X[base + j]; }
  for (var j = 0u; j < D; j++) { Out[base + j] = X[base + j] * (G[base + j] - dot); }
}
