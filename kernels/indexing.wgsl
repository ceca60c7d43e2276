// Index-mapping kernels: row gather (embedding lookup) and its backward, general transpose, slice, the
// zero-padded scatter that is slice's backward, and concat. Every entry runs one invocation per output
// element that computes where its value comes from, so each output is written exactly once (no atomics).
//
// Constants:
//   gather, gather_backward: N (indices), R (table rows), E (row width).
//   transpose: NOUT, the output shape O0..O5 and, per output dim, the input stride S0..S5 (left-padded to
//     rank 6 with extent 1).
//   slice, pad: the operand viewed as [OUTER, A, INNER] around the sliced axis; the slice covers
//     [START, START + L) of A. slice reads the [OUTER, L, INNER] window; pad writes [OUTER, A, INNER] with
//     zeros outside it.
//   concat: the output viewed as [OUTER, ATOT, INNER]; input j covers A{j} rows of the axis (0 if absent).
@group(0) @binding(0) var<storage, read> X0: array<f32>;
@group(0) @binding(1) var<storage, read> X1: array<f32>;
@group(0) @binding(2) var<storage, read> X2: array<f32>;
@group(0) @binding(3) var<storage, read> X3: array<f32>;
@group(0) @binding(4) var<storage, read> Index: array<i32>;
@group(0) @binding(5) var<storage, read_write> Out: array<f32>;

const WG: u32 = 256u;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

// Indices outside [0, R) are clamped to the nearest row. They come from the data set registry, so a bad
// one is a bug upstream; clamping keeps the kernel from reading out of bounds, and the CPU reference
// clamps the same way so both backends agree.
fn row_of(n: u32) -> u32 { return u32(clamp(Index[n], 0, i32(R) - 1)); }

// Out[n, e] = X0[index[n], e].
@compute @workgroup_size(WG)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_id(gid, nwg);
  if (i >= N * E) { return; }
  Out[i] = X0[row_of(i / E) * E + i % E];
}

// dTable[r, e] = sum of G[n, e] (G in X0) over the n that picked row r: one invocation per table element
// walks the N indices, which are few (one per sample).
@compute @workgroup_size(WG)
fn gather_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_id(gid, nwg);
  if (i >= R * E) { return; }
  let r = i / E;
  let e = i % E;
  var acc = 0.0;
  for (var n = 0u; n < N; n++) {
    if (row_of(n) == r) { acc += X0[n * E + e]; }
  }
  Out[i] = acc;
}

@compute @workgroup_size(WG)
fn transpose(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_id(gid, nwg);
  if (i >= NOUT) { return; }
  let dims = array<u32, 6>(O0, O1, O2, O3, O4, O5);
  let st = array<u32, 6>(S0, S1, S2, S3, S4, S5);
  var rem = i;
  var src = 0u;
  for (var d = 5i; d >= 0; d--) {
    src += (rem % dims[d]) * st[d];
    rem = rem / dims[d];
  }
  Out[i] = X0[src];
}

@compute @workgroup_size(WG)
fn slice(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_id(gid, nwg);
  if (i >= OUTER * L * INNER) { return; }
  let inner = i % INNER;
  let l = (i / INNER) % L;
  let o = i / (INNER * L);
  Out[i] = X0[(o * A + START + l) * INNER + inner];
}

// Backward of slice: the gradient window (in X0) placed back into zeros of the input's shape.
@compute @workgroup_size(WG)
fn pad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_id(gid, nwg);
  if (i >= OUTER * A * INNER) { return; }
  let inner = i % INNER;
  let a = (i / INNER) % A;
  let o = i / (INNER * A);
  var v = 0.0;
  if (a >= START && a < START + L) { v = X0[(o * L + a - START) * INNER + inner]; }
  Out[i] = v;
}

// Absent inputs (fewer than 4) have A{j} = 0 and a placeholder binding that is never read.
@compute @workgroup_size(WG)
fn concat(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_id(gid, nwg);
  if (i >= OUTER * ATOT * INNER) { return; }
  let inner = i % INNER;
  let a = (i / INNER) % ATOT;
  let o = i / (INNER * ATOT);
  var v: f32;
  if (a < A0) {
    v = X0[(o * A0 + a) * INNER + inner];
  } else if (a < A0 + A1) {
    v = X1[(o * A1 + a - A0) * INNER + inner];
  } else if (a < A0 + A1 + A2) {
    v = X2[(o * A2 + a - A0 - A1) * INNER + inner];
  } else {
    v = X3[(o * A3 + a - A0 - A1 - A2) * INNER + inner];
  }
  Out[i] = v;
}
