// LayerNorm over the last dimension of x [ROWS, D]; fconst EPS. Stats [2, ROWS] = mean, rstd per row,
// saved by the forward for the backward.
// forward:         y = (x - mean) * rstd * gamma + beta; two passes over the row (mean, then the
//                  variance of the centred values) for accuracy.
// backward_x:      dx = rstd * (g gamma - mean(g gamma) - xhat * mean(g gamma xhat)), xhat = (x - mean) rstd.
// backward_params: dgamma = sum_rows g xhat, dbeta = sum_rows g; one invocation per feature column
//                  looping over the rows, so each output has one owner (no atomics).
// Layout: one invocation per row. Measured on lavapipe (2 cores, Medformer sizes: rows 3136 and 32768
// at D 128, 3136 at D 256, 8192 at D 512) it is 3-9x faster than a workgroup per row with a
// shared-memory tree: barriers make lavapipe run a workgroup's SIMD chunks as coroutines, and most lanes
// idle in the tree. Reading rows as vec4 gains another 1.3-2x, so the `*4` entries (D % 4 == 0) bind
// the same buffers as arrays of vec4 (D4 = D / 4 per row); the scalar entries serve any other D. Each
// entry point uses only one of the two declarations that share a binding.
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(0) var<storage, read> X4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> Gamma: array<f32>;
@group(0) @binding(1) var<storage, read> Gamma4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> Beta: array<f32>;
@group(0) @binding(2) var<storage, read> Beta4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read> G4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> Out: array<f32>;
@group(0) @binding(4) var<storage, read_write> Out4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> Stats: array<f32>;
@group(0) @binding(5) var<storage, read> StatsIn: array<f32>;
@group(0) @binding(6) var<storage, read_write> Out2: array<f32>;
@group(0) @binding(6) var<storage, read_write> Out24: array<vec4<f32>>;

// ROWS and D arrive at run time (filled by the prelude's `load_dims` from the MF_DIMS uniform): besides
// sharing one pipeline across row counts and widths, a loop bound the compiler cannot see is a loop it does
// not unroll. Baked in, D = 128 made LLVM unroll every row loop 32-fold around 8-lane gathers, and the
// forward alone took longer to compile on lavapipe than any other kernel (see BENCHMARKS.md, cold start).
var<private> ROWS: u32;
var<private> D: u32;
// D / 4, set after load_dims by the vec4 entries.
var<private> D4: u32;

const WG: u32 = 64u;
// The column loop of backward_params has few invocations (D or D / 4): smaller groups spread them
// over more cores.
const WGP: u32 = 32u;

fn flat(gid: vec3<u32>, nwg: vec3<u32>, wg: u32) -> u32 { return gid.x + gid.y * nwg.x * wg; }

// The vec4 entries add the four lanes' partial sums this way; the CPU reference mirrors it.
fn hsum(v: vec4<f32>) -> f32 { return (v.x + v.y) + (v.z + v.w); }

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  load_dims();
  let r = flat(gid, nwg, WG);
  if (r >= ROWS) { return; }
  let base = r * D;
  var s = 0.0;
  for (var j = 0u; j < D; j++) { s += X[base + j]; }
  let mu = s / f32(D);
  var v = 0.0;
  for (var j = 0u; j < D; j++) { let d = X[base + j] - mu; v += d * d; }
  let rstd = inverseSqrt(v / f32(D) + EPS);
  for (var j = 0u; j < D; j++) { Out[base + j] = (X[base + j] - mu) * rstd * Gamma[j] + Beta[j]; }
  Stats[r] = mu;
  Stats[ROWS + r] = rstd;
}

@compute @workgroup_size(WG)
fn forward4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  load_dims();
  D4 = D / 4u;
  let r = flat(gid, nwg, WG);
  if (r >= ROWS) { return; }
  let base = r * D4;
  var s = vec4<f32>(0.0);
  for (var j = 0u; j < D4; j++) { s += X4[base + j]; }
  let mu = hsum(s) / f32(D);
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < D4; j++) { let d = X4[base + j] - mu; v += d * d; }
  let rstd = inverseSqrt(hsum(v) / f32(D) + EPS);
  for (var j = 0u; j < D4; j++) { Out4[base + j] = (X4[base + j] - mu) * rstd * Gamma4[j] + Beta4[j]; }
  Stats[r] = mu;
  Stats[ROWS + r] = rstd;
}

@compute @workgroup_size(WG)
fn backward_x(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  load_dims();
  let r = flat(gid, nwg, WG);
  if (r >= ROWS) { return; }
  let base = r * D;
  let mu = StatsIn[r];
  let rstd = StatsIn[ROWS + r];
  var a = 0.0;
  var b = 0.0;
  for (var j = 0u; j < D; j++) {
    let dxh = G[base + j] * Gamma[j];
    a += dxh;
    b += dxh * ((X[base + j] - mu) * rstd);
  }
  let ma = a / f32(D);
  let mb = b / f32(D);
  for (var j = 0u; j < D; j++) {
    let xh = (X[base + j] - mu) * rstd;
    Out[base + j] = rstd * ((G[base + j] * Gamma[j] - ma) - xh * mb);
  }
}

@compute @workgroup_size(WG)
fn backward_x4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  load_dims();
  D4 = D / 4u;
  let r = flat(gid, nwg, WG);
  if (r >= ROWS) { return; }
  let base = r * D4;
  let mu = StatsIn[r];
  let rstd = StatsIn[ROWS + r];
  var a = vec4<f32>(0.0);
  var b = vec4<f32>(0.0);
  for (var j = 0u; j < D4; j++) {
    let dxh = G4[base + j] * Gamma4[j];
    a += dxh;
    b += dxh * ((X4[base + j] - mu) * rstd);
  }
  let ma = hsum(a) / f32(D);
  let mb = hsum(b) / f32(D);
  for (var j = 0u; j < D4; j++) {
    let xh = (X4[base + j] - mu) * rstd;
    Out4[base + j] = rstd * ((G4[base + j] * Gamma4[j] - ma) - xh * mb);
  }
}

// Out = dgamma, Out2 = dbeta.
@compute @workgroup_size(WGP)
fn backward_params(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  load_dims();
  let j = flat(gid, nwg, WGP);
  if (j >= D) { return; }
  var dg = 0.0;
  var db = 0.0;
  for (var r = 0u; r < ROWS; r++) {
    let g = G[r * D + j];
    dg += g * ((X[r * D + j] - StatsIn[r]) * StatsIn[ROWS + r]);
    db += g;
  }
  Out[j] = dg;
  Out2[j] = db;
}

// Four adjacent columns per invocation.
@compute @workgroup_size(WGP)
fn backward_params4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  load_dims();
  D4 = D / 4u;
  let j = flat(gid, nwg, WGP);
  if (j >= D4) { return; }
  var dg = vec4<f32>(0.0);
  var db = vec4<f32>(0.0);
  for (var r = 0u; r < ROWS; r++) {
    let g = G4[r * D4 + j];
    dg += g * ((X4[r * D4 + j] - StatsIn[r]) * StatsIn[ROWS + r]);
    db += g;
  }
  Out4[j] = dg;
  Out24[j] = db;
}
