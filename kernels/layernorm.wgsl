// LayerNorm over the last dimension. Constants: ROWS, D; fconst EPS.
// forward: one invocation per row; two passes (mean, then variance of the centred values) for accuracy;
//          saves mean and rstd per row for the backward.
// backward_x: one invocation per row: dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
// backward_params: one invocation per feature, looping over rows (no atomics): dgamma, dbeta.
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Gamma: array<f32>;
@group(0) @binding(2) var<storage, read> Beta: array<f32>;
@group(0) @binding(3) var<storage, read> G: array<f32>;
@group(0) @binding(4) var<storage, read_write> Out: array<f32>;
@group(0) @binding(5) var<storage, read_write> Mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> Rstd: array<f32>;
@group(0) @binding(7) var<storage, read_write> Out2: array<f32>;

const WG: u32 = 64u;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = flat(gid, nwg);
  if (r >= ROWS) { return; }
  let base = r * D;
  var s = 0.0;
  for (var j = 0u; j < D; j++) { s += X[base + j]; }
  let mu = s / f32(D);
  var v = 0.0;
  for (var j = 0u; j < D; j++) { let d = X[base + j] - mu; v += d * d; }
  let rstd = inverseSqrt(v / f32(D) + EPS);
  for (var j = 0u; j < D; j++) { Out[base + j] = (X[base + j] - mu) * rstd * Gamma[j] + Beta[j]; }
  Mean[r] = mu;
  Rstd[r] = rstd;
}

// Mean and Rstd are bound read-write only because of their slots; this entry reads them.
@compute @workgroup_size(WG)
fn backward_x(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = flat(gid, nwg);
  if (r >= ROWS) { return; }
  let base = r * D;
  let mu = Mean[r];
  let rstd = Rstd[r];
  var a = 0.0;
  var b = 0.0;
  for (var j = 0u; j < D; j++) {
    let dxh = G[base + j] * Gamma[j];
    a += dxh;
    b += dxh * (X[base + j] - mu) * rstd;
  }
  a = a / f32(D);
  b = b / f32(D);
  for (var j = 0u; j < D; j++) {
    let xh = (X[base + j] - mu) * rstd;
    Out[base + j] = rstd * (G[base + j] * Gamma[j] - a - xh * b);
  }
}

// Out = dgamma, Out2 = dbeta.
@compute @workgroup_size(WG)
fn backward_params(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let j = flat(gid, nwg);
  if (j >= D) { return; }
  var dg = 0.0;
  var db = 0.0;
  for (var r = 0u; r < ROWS; r++) {
    let g = G[r * D + j];
    dg += g * (X[r * D + j] - Mean[r]) * Rstd[r];
    db += g;
  }
  Out[j] = dg;
  Out2[j] = db;
}
