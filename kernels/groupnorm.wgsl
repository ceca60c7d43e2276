// GroupNorm over x [B, C, S] (S = flattened spatial size), NG groups of CG = C / NG channels; a group of
// one sample is CG * S contiguous values. Constants: B, C, NG, CG, S; fconst EPS.
// Stats [2, B * NG] = mean, rstd.  Sums [2, B * C] = per (b, c): sum(g), sum(g * xhat).
// stats / channel_sums: one workgroup per (b, group) / (b, channel), WG threads striding over the values
// (neighbouring threads read neighbouring addresses), then a tree reduction in workgroup memory.
// apply / backward_x: one invocation per element.  param_grads: one invocation per channel over the
// batch.  group_coeffs: one per (b, group).  No atomics anywhere.
// dx = rstd * (g * gamma - mean_group(g * gamma) - xhat * mean_group(g * gamma * xhat)).
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Gamma: array<f32>;
@group(0) @binding(2) var<storage, read> Beta: array<f32>;
@group(0) @binding(3) var<storage, read> Gr: array<f32>;
@group(0) @binding(4) var<storage, read_write> Stats: array<f32>;
@group(0) @binding(5) var<storage, read_write> Sums: array<f32>;
@group(0) @binding(6) var<storage, read_write> Out: array<f32>;
@group(0) @binding(7) var<storage, read_write> Coef: array<f32>;

const WG: u32 = 64u;

var<workgroup> red: array<f32, WG>;
var<workgroup> red2: array<f32, WG>;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

// Sums red and red2 into element 0; every thread may read the results after it returns.
fn tree(l: u32) {
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    workgroupBarrier();
    if (l < s) {
      red[l] += red[l + s];
      red2[l] += red2[l + s];
    }
  }
  workgroupBarrier();
}

// Two passes (mean, then the variance of centred values) for accuracy.
@compute @workgroup_size(WG)
fn stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
  let grp = wid.x + wid.y * nwg.x;
  if (grp >= B * NG) { return; }
  let n = CG * S;
  let base = grp * n;
  var s = 0.0;
  for (var i = l; i < n; i += WG) { s += X[base + i]; }
  red[l] = s;
  red2[l] = 0.0;
  tree(l);
  let mu = red[0] / f32(n);
  workgroupBarrier();
  var v = 0.0;
  for (var i = l; i < n; i += WG) {
    let d = X[base + i] - mu;
    v += d * d;
  }
  red[l] = v;
  tree(l);
  if (l == 0u) {
    Stats[grp] = mu;
    Stats[B * NG + grp] = inverseSqrt(red[0] / f32(n) + EPS);
  }
}

@compute @workgroup_size(WG)
fn apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = flat(gid, nwg);
  if (e >= B * C * S) { return; }
  let bc = e / S;
  let c = bc % C;
  let grp = (bc / C) * NG + c / CG;
  Out[e] = (X[e] - Stats[grp]) * Stats[B * NG + grp] * Gamma[c] + Beta[c];
}

@compute @workgroup_size(WG)
fn channel_sums(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
  let bc = wid.x + wid.y * nwg.x;
  if (bc >= B * C) { return; }
  let grp = (bc / C) * NG + (bc % C) / CG;
  let mu = Stats[grp];
  let rstd = Stats[B * NG + grp];
  let base = bc * S;
  var s1 = 0.0;
  var s2 = 0.0;
  for (var i = l; i < S; i += WG) {
    let g = Gr[base + i];
    s1 += g;
    s2 += g * ((X[base + i] - mu) * rstd);
  }
  red[l] = s1;
  red2[l] = s2;
  tree(l);
  if (l == 0u) {
    Sums[bc] = red[0];
    Sums[B * C + bc] = red2[0];
  }
}

// Out = dgamma, Coef = dbeta.
@compute @workgroup_size(WG)
fn param_grads(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = flat(gid, nwg);
  if (c >= C) { return; }
  var dg = 0.0;
  var db = 0.0;
  for (var b = 0u; b < B; b++) {
    db += Sums[b * C + c];
    dg += Sums[B * C + b * C + c];
  }
  Out[c] = dg;
  Coef[c] = db;
}

// Coef [2, B * NG] = mean_group(g * gamma), mean_group(g * gamma * xhat).
@compute @workgroup_size(WG)
fn group_coeffs(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let grp = flat(gid, nwg);
  if (grp >= B * NG) { return; }
  let c0 = (grp % NG) * CG;
  let bc0 = (grp / NG) * C + c0;
  var m1 = 0.0;
  var m2 = 0.0;
  for (var j = 0u; j < CG; j++) {
    m1 += Gamma[c0 + j] * Sums[bc0 + j];
    m2 += Gamma[c0 + j] * Sums[B * C + bc0 + j];
  }
  let n = f32(CG * S);
  Coef[grp] = m1 / n;
  Coef[B * NG + grp] = m2 / n;
}

@compute @workgroup_size(WG)
fn backward_x(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = flat(gid, nwg);
  if (e >= B * C * S) { return; }
  let bc = e / S;
  let c = bc % C;
  let grp = (bc / C) * NG + c / CG;
  let rstd = Stats[B * NG + grp];
  let xh = (X[e] - Stats[grp]) * rstd;
  Out[e] = rstd * (Gr[e] * Gamma[c] - Coef[grp] - xh * Coef[B * NG + grp]);
}
