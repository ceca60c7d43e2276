// Patch embedding in one kernel: out[b, t, e] = sum_k patch(x)[b, t, k] * W[k, e] + bias[e] + pos[t, e],
// gathering each patch value straight from the image (implicit im2col: no patch tensor is materialised).
// 2D images are volumes of depth 1 with patch depth 1, so one kernel serves both.
// Constants: B, C, D, H, W (input extents), PD, P (patch depth / side), GD, GH, GW (patch grid),
// T = GD*GH*GW tokens, K = C*PD*P*P fan-in (k = c*PD*P*P + (pd*P + ph)*P + pw), E embedding width.
//
// Both entries register-block a 4x4 tile of their output like kernels/matmul.wgsl: per step 4 image values
// and 4 values of W (or G) feed 16 FMAs. The offset of a value inside its patch does not depend on which
// patch it is, so the patch walk is nested loops over (c, pd, ph, pw) adding an offset to each row's patch
// origin, with no per-element division.
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Wt: array<f32>;
@group(0) @binding(2) var<storage, read> Bias: array<f32>;
@group(0) @binding(3) var<storage, read> Pos: array<f32>;
@group(0) @binding(4) var<storage, read> G: array<f32>;
@group(0) @binding(5) var<storage, read_write> Out: array<f32>;

const TILE: u32 = 4u;
const WG: u32 = 8u;
// Row blocks beyond 65535 workgroups in y continue in z (grid() folds them the same way).
const Y_SPAN: u32 = 65535u * WG;

// Offset in X of the first value of token t of image b (row = b*T + t).
fn patch_origin(row: u32) -> u32 {
  let b = row / T;
  let t = row % T;
  let td = t / (GH * GW);
  let th = (t / GW) % GH;
  let tw = t % GW;
  return ((b * C * D + td * PD) * H + th * P) * W + tw * P;
}

// Offset of fan-in element k relative to its patch's origin.
fn fanin_offset(k: u32) -> u32 {
  let c = k / (PD * P * P);
  let r = k % (PD * P * P);
  return ((c * D + r / (P * P)) * H + (r / P) % P) * W + r % P;
}

// One invocation per block of 4 tokens (rows b*T + t) x 4 embedding columns.
@compute @workgroup_size(WG, WG, 1)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>) {
  let row0 = (gid.y + gid.z * Y_SPAN) * TILE;
  let e0 = gid.x * TILE;
  if (row0 >= B * T || e0 >= E) { return; }
  // Edge blocks clamp their lanes to valid rows/columns; the extra lanes are computed but never stored.
  var base: array<u32, 4>;
  var cols: array<u32, 4>;
  for (var i = 0u; i < TILE; i++) {
    base[i] = patch_origin(min(row0 + i, B * T - 1u));
    cols[i] = min(e0 + i, E - 1u);
  }
  var acc: array<vec4<f32>, 4>;
  var wrow = 0u;
  for (var c = 0u; c < C; c++) {
    for (var pd = 0u; pd < PD; pd++) {
      for (var ph = 0u; ph < P; ph++) {
        let off = ((c * D + pd) * H + ph) * W;
        for (var pw = 0u; pw < P; pw++) {
          let wv = vec4<f32>(Wt[wrow + cols[0]], Wt[wrow + cols[1]], Wt[wrow + cols[2]], Wt[wrow + cols[3]]);
          let o = off + pw;
          for (var i = 0u; i < TILE; i++) {
            acc[i] = fma(vec4<f32>(X[base[i] + o]), wv, acc[i]);
          }
          wrow += E;
        }
      }
    }
  }
  for (var i = 0u; i < TILE; i++) {
    let row = row0 + i;
    if (row >= B * T) { break; }
    let t = row % T;
    for (var j = 0u; j < TILE; j++) {
      let e = e0 + j;
      if (e >= E) { break; }
      Out[row * E + e] = acc[i][j] + Bias[e] + Pos[t * E + e];
    }
  }
}

// dW[k, e] = sum over rows (b, t) of patch[b, t, k] * G[b, t, e]. One invocation owns a 4x4 block of dW
// and walks every token, so no two invocations write the same element (no float atomics in WGSL).
@compute @workgroup_size(WG, WG, 1)
fn backward_weight(@builtin(global_invocation_id) gid: vec3<u32>) {
  let k0 = gid.y * TILE;
  let e0 = gid.x * TILE;
  if (k0 >= K || e0 >= E) { return; }
  var koff: array<u32, 4>;
  var cols: array<u32, 4>;
  for (var i = 0u; i < TILE; i++) {
    koff[i] = fanin_offset(min(k0 + i, K - 1u));
    cols[i] = min(e0 + i, E - 1u);
  }
  var acc: array<vec4<f32>, 4>;
  var grow = 0u;
  for (var b = 0u; b < B; b++) {
    for (var td = 0u; td < GD; td++) {
      for (var th = 0u; th < GH; th++) {
        let line = ((b * C * D + td * PD) * H + th * P) * W;
        for (var tw = 0u; tw < GW; tw++) {
          let origin = line + tw * P;
          let gv = vec4<f32>(G[grow + cols[0]], G[grow + cols[1]], G[grow + cols[2]], G[grow + cols[3]]);
          for (var i = 0u; i < TILE; i++) {
            acc[i] = fma(vec4<f32>(X[origin + koff[i]]), gv, acc[i]);
          }
          grow += E;
        }
      }
    }
  }
  for (var i = 0u; i < TILE; i++) {
    let k = k0 + i;
    if (k >= K) { break; }
    for (var j = 0u; j < TILE; j++) {
      let e = e0 + j;
      if (e >= E) { break; }
      Out[k * E + e] = acc[i][j];
    }
  }
}
