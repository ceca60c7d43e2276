// Row gather (embedding lookup) and its backward. Constants: N (indices), R (table rows), E (row width).
// Indices outside [0, R) are clamped: they come from the data set registry, so a bad one is a bug, and
// clamping keeps the kernel from reading out of bounds.
@group(0) @binding(0) var<storage, read> Table: array<f32>;
@group(0) @binding(1) var<storage, read> Index: array<i32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read_write> Out: array<f32>;

const WG: u32 = 64u;

fn row_of(n: u32) -> u32 { return u32(clamp(Index[n], 0, i32(R) - 1)); }

@compute @workgroup_size(WG)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N * E) { return; }
  Out[i] = Table[row_of(i / E) * E + i % E];
}

// dTable[r, e] = sum of G[n, e] over the n that picked row r: one invocation per table element.
@compute @workgroup_size(WG)
fn gather_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= R * E) { return; }
  let r = i / E;
  let e = i % E;
  var acc = 0.0;
  for (var n = 0u; n < N; n++) {
    if (row_of(n) == r) { acc += G[n * E + e]; }
  }
  Out[i] = acc;
}
