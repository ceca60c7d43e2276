// Batched matmul C[b] = act(op(A[b]) @ op(B[b]) + bias), op = optional transpose (TA, TB flags, no copies).
// Constants injected by the runtime: BATCH, M, N, K, TA, TB, HAS_BIAS, ACT (0 none, 1 GELU-tanh, 2 ReLU),
// SAVE_PRE (write the pre-activation to Z for the backward pass), A_BSTRIDE, B_BSTRIDE (0 broadcasts).
//
// Each invocation owns a 4x4 block of C held in registers (register blocking): per k it loads 4 values of
// A and 4 of B and does 16 FMAs. No workgroup memory: on CPU rasterisers (lavapipe) the caches already
// serve the reuse that workgroup tiling buys on GPUs, and skipping the barriers is faster there.
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<storage, read_write> Z: array<f32>;

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
