// Batched matmul C[b] = act(op(A[b]) @ op(B[b]) + bias), op = optional transpose (TA, TB flags, no copies).
// Constants injected by the runtime: BATCH, M, N, K, TA, TB, HAS_BIAS, ACT (0 none, 1 GELU-tanh, 2 ReLU),
// SAVE_PRE (write the pre-activation to Z for the backward pass), A_BSTRIDE, B_BSTRIDE (0 broadcasts).
// BATCH, M, N, K and the batch strides arrive at run time (the `var<private>` below, filled by the prelude's
// `load_dims` from the MF_DIMS uniform): they only bound loops, clamp edges and scale offsets, and they are
// what changes with the batch size and the layer widths, so one pipeline serves every shape of one transpose and
// epilogue combination (a new pipeline costs seconds of LLVM on lavapipe; reading them at run time costs nothing
// measurable).
//
// Each invocation owns a 4x4 block of C held in registers (register blocking): per k it loads 4 values of
// A and 4 of B and does 16 FMAs. No workgroup memory: on CPU rasterisers (lavapipe) the caches already
// serve the reuse that workgroup tiling buys on GPUs, and skipping the barriers is faster there.
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<storage, read_write> Z: array<f32>;

var<private> BATCH: u32;
var<private> M: u32;
var<private> N: u32;
var<private> K: u32;
var<private> A_BSTRIDE: u32;
var<private> B_BSTRIDE: u32;

const TILE: u32 = 4u;
const WG: u32 = 8u;

fn a_at(base: u32, m: u32, k: u32) -> f32 {
  if (TA == 1u) { return A[base + k * M + m]; }
  return A[base + m * K + k];
}

fn b_at(base: u32, k: u32, n: u32) -> f32 {
  if (TB == 1u) { return B[base + n * K + k]; }
  return B[base + k * N + n];
}

fn gelu(x: f32) -> f32 {
  // tanh form of GELU; the argument is clamped because tanh(large) can overflow exp() on some drivers.
  let u = clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -15.0, 15.0);
  return 0.5 * x * (1.0 + tanh(u));
}

@compute @workgroup_size(WG, WG, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  load_dims();
  let b = gid.z;
  let row0 = gid.y * TILE;
  let col0 = gid.x * TILE;
  if (row0 >= M || col0 >= N) { return; }
  let abase = b * A_BSTRIDE;
  let bbase = b * B_BSTRIDE;
  // Clamp the block's indices so edge blocks read valid memory; their extra lanes are never stored.
  var rows: array<u32, 4>;
  var cols: array<u32, 4>;
  for (var i = 0u; i < TILE; i++) {
    rows[i] = min(row0 + i, M - 1u);
    cols[i] = min(col0 + i, N - 1u);
  }
  var acc: array<vec4<f32>, 4>;
  for (var k = 0u; k < K; k++) {
    let bv = vec4<f32>(b_at(bbase, k, cols[0]), b_at(bbase, k, cols[1]), b_at(bbase, k, cols[2]), b_at(bbase, k, cols[3]));
    for (var i = 0u; i < TILE; i++) {
      acc[i] = fma(vec4<f32>(a_at(abase, rows[i], k)), bv, acc[i]);
    }
  }
  let cbase = b * M * N;
  for (var i = 0u; i < TILE; i++) {
    let r = row0 + i;
    if (r >= M) { break; }
    for (var j = 0u; j < TILE; j++) {
      let c = col0 + j;
      if (c >= N) { break; }
      var v = acc[i][j];
      if (HAS_BIAS == 1u) { v += bias[c]; }
      if (SAVE_PRE == 1u) { Z[cbase + r * N + c] = v; }
      if (ACT == 1u) { v = gelu(v); } else if (ACT == 2u) { v = max(v, 0.0); }
      C[cbase + r * N + c] = v;
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Vectorised variant, chosen when every streamed dimension is a multiple of 4 (all Medformer shapes).
// Each invocation owns an 8x8 block of C and walks K four at a time with vec4 loads: 16 vec4 loads feed
// 256 FMAs, against 8 scalar loads per 16 FMAs above. On CPU rasterisers every load costs about the
// same whether scalar or vec4, so loads per FMA decide the speed; on GPUs vec4 loads are coalesced.
@group(0) @binding(0) var<storage, read> A4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> B4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> C4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> Z4: array<vec4<f32>>;

fn gelu4(x: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(gelu(x.x), gelu(x.y), gelu(x.z), gelu(x.w));
}

@compute @workgroup_size(8, 8, 1)
fn main_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
  load_dims();
  let b = gid.z;
  let row0 = gid.y * 8u;
  let col0 = gid.x * 8u;
  if (row0 >= M || col0 >= N) { return; }
  let abase = b * A_BSTRIDE;
  let bbase = b * B_BSTRIDE;
  // Edge blocks clamp to the last full rows/columns; only their in-range part is stored.
  var rows = array<u32, 8>();
  for (var i = 0u; i < 8u; i++) { rows[i] = min(row0 + i, M - 1u); }
  let rowq0 = min(row0, M - 4u) / 4u;
  let rowq1 = min(row0 + 4u, M - 4u) / 4u;
  let colq0 = min(col0, N - 4u) / 4u;
  let colq1 = min(col0 + 4u, N - 4u) / 4u;
  var cols = array<u32, 8>();
  for (var j = 0u; j < 8u; j++) { cols[j] = min(col0 + j, N - 1u); }
  var acc = array<vec4<f32>, 16>();
  for (var k = 0u; k < K; k += 4u) {
    // bk[kk][g]: columns 4g..4g+3 of row k+kk of op(B).
    var bk = array<vec4<f32>, 8>();
    if (TB == 0u) {
      for (var kk = 0u; kk < 4u; kk++) {
        let base = (bbase + (k + kk) * N) / 4u;
        bk[kk * 2u] = B4[base + colq0];
        bk[kk * 2u + 1u] = B4[base + colq1];
      }
    } else {
      // B stored [N, K]: one vec4 along k per column, transposed in registers.
      var bt = array<vec4<f32>, 8>();
      for (var j = 0u; j < 8u; j++) { bt[j] = B4[(bbase + cols[j] * K + k) / 4u]; }
      for (var kk = 0u; kk < 4u; kk++) {
        bk[kk * 2u] = vec4<f32>(bt[0][kk], bt[1][kk], bt[2][kk], bt[3][kk]);
        bk[kk * 2u + 1u] = vec4<f32>(bt[4][kk], bt[5][kk], bt[6][kk], bt[7][kk]);
      }
    }
    // ak[i]: row i of the block, k..k+3 of op(A).
    var ak = array<vec4<f32>, 8>();
    if (TA == 0u) {
      for (var i = 0u; i < 8u; i++) { ak[i] = A4[(abase + rows[i] * K + k) / 4u]; }
    } else {
      // A stored [K, M]: one vec4 along m per k, transposed in registers.
      var at = array<vec4<f32>, 8>();
      for (var kk = 0u; kk < 4u; kk++) {
        let base = (abase + (k + kk) * M) / 4u;
        at[kk * 2u] = A4[base + rowq0];
        at[kk * 2u + 1u] = A4[base + rowq1];
      }
      for (var i = 0u; i < 8u; i++) {
        let g = i / 4u;
        let r = i % 4u;
        ak[i] = vec4<f32>(at[g][r], at[2u + g][r], at[4u + g][r], at[6u + g][r]);
      }
    }
    for (var i = 0u; i < 8u; i++) {
      for (var kk = 0u; kk < 4u; kk++) {
        let a = vec4<f32>(ak[i][kk]);
        acc[i * 2u] = fma(a, bk[kk * 2u], acc[i * 2u]);
        acc[i * 2u + 1u] = fma(a, bk[kk * 2u + 1u], acc[i * 2u + 1u]);
      }
    }
  }
  let cbase = b * M * N;
  for (var i = 0u; i < 8u; i++) {
    let r = row0 + i;
    if (r >= M) { break; }
    for (var g = 0u; g < 2u; g++) {
      let c = col0 + 4u * g;
      if (c >= N) { break; }
      var v = acc[i * 2u + g];
      if (HAS_BIAS == 1u) { v += vec4<f32>(bias[c], bias[c + 1u], bias[c + 2u], bias[c + 3u]); }
      let o = (cbase + r * N + c) / 4u;
      if (SAVE_PRE == 1u) { Z4[o] = v; }
      if (ACT == 1u) { v = gelu4(v); } else if (ACT == 2u) { v = max(v, vec4<f32>(0.0)); }
      C4[o] = v;
    }
  }
}
