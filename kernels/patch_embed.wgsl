// Patch embedding in one kernel: out[b, t, e] = sum_k patch(x)[b, t, k] * W[k, e] + bias[e] + pos[t, e],
// gathering each patch value straight from the image (implicit im2col, no patch tensor).
// 2D images are volumes of depth 1 with patch depth 1, so one kernel serves both.
// Constants: B, C, D, H, W (input extents), PD, P (patch depth / side), GD, GH, GW (patch grid),
// T = GD*GH*GW tokens, K = C*PD*P*P fan-in, E embedding width.
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Wt: array<f32>;
@group(0) @binding(2) var<storage, read> Bias: array<f32>;
@group(0) @binding(3) var<storage, read> Pos: array<f32>;
@group(0) @binding(4) var<storage, read> G: array<f32>;
@group(0) @binding(5) var<storage, read_write> Out: array<f32>;

const TILE: u32 = 4u;

// Index into X of fan-in element k of token t of image b.
fn x_index(b: u32, t: u32, k: u32) -> u32 {
  let c = k / (PD * P * P);
  let r = k % (PD * P * P);
  let pd = r / (P * P);
  let ph = (r / P) % P;
  let pw = r % P;
  let td = t / (GH * GW);
  let th = (t / GW) % GH;
  let tw = t % GW;
  return (((b * C + c) * D + td * PD + pd) * H + th * P + ph) * W + tw * P + pw;
}

// One invocation per (row = b*T + t, block of 4 embedding columns).
@compute @workgroup_size(8, 8, 1)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>) {
  let row = gid.y + gid.z * 65535u * 8u;
  let e0 = gid.x * TILE;
  if (row >= B * T || e0 >= E) { return; }
  let b = row / T;
  let t = row % T;
  var cols: array<u32, 4>;
  for (var j = 0u; j < TILE; j++) { cols[j] = min(e0 + j, E - 1u); }
  var acc = vec4<f32>(0.0);
  for (var k = 0u; k < K; k++) {
    let xv = X[x_index(b, t, k)];
    let wv = vec4<f32>(Wt[k * E + cols[0]], Wt[k * E + cols[1]], Wt[k * E + cols[2]], Wt[k * E + cols[3]]);
    acc = fma(vec4<f32>(xv), wv, acc);
  }
  for (var j = 0u; j < TILE; j++) {
    let e = e0 + j;
    if (e >= E) { break; }
    Out[row * E + e] = acc[j] + Bias[e] + Pos[t * E + e];
  }
}

// dW[k, e] = sum over (b, t) of patch[b, t, k] * G[b, t, e]: one invocation per (k, block of 4 columns).
@compute @workgroup_size(8, 8, 1)
fn backward_weight(@builtin(global_invocation_id) gid: vec3<u32>) {
  let k = gid.y;
  let e0 = gid.x * TILE;
  if (k >= K || e0 >= E) { return; }
  var cols: array<u32, 4>;
  for (var j = 0u; j < TILE; j++) { cols[j] = min(e0 + j, E - 1u); }
  var acc = vec4<f32>(0.0);
  for (var row = 0u; row < B * T; row++) {
    let xv = X[x_index(row / T, row % T, k)];
    let gv = vec4<f32>(G[row * E + cols[0]], G[row * E + cols[1]], G[row * E + cols[2]], G[row * E + cols[3]]);
    acc = fma(vec4<f32>(xv), gv, acc);
  }
  for (var j = 0u; j < TILE; j++) {
    let e = e0 + j;
    if (e >= E) { break; }
    Out[k * E + e] = acc[j];
  }
}
