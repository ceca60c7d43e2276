// Sum over any set of axes (keepdims shape), one invocation per output element.
// Constants: NOUT; RTOT (elements summed per output); for each of 6 left-padded dims d:
// O{d} output extent (1 where reduced), R{d} reduced extent (1 where kept), S{d} input stride.
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Out: array<f32>;

const WG: u32 = 64u;

@compute @workgroup_size(WG)
fn sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = gid.x + gid.y * nwg.x * WG;
  if (o >= NOUT) { return; }
  let od = array<u32, 6>(O0, O1, O2, O3, O4, O5);
  let rd = array<u32, 6>(R0, R1, R2, R3, R4, R5);
  let st = array<u32, 6>(S0, S1, S2, S3, S4, S5);
  var rem = o;
  var base = 0u;
  for (var d = 5i; d >= 0; d--) {
    base += (rem % od[d]) * st[d];
    rem = rem / od[d];
  }
  // Kahan-free pairwise-ish: four partial sums shorten the dependency chain and the rounding error.
  var acc = vec4<f32>(0.0);
  for (var r = 0u; r < RTOT; r++) {
    var rr = r;
    var off = base;
    for (var d = 5i; d >= 0; d--) {
      off += (rr % rd[d]) * st[d];
      rr = rr / rd[d];
    }
    acc[r & 3u] += X[off];
  }
  Out[o] = (acc.x + acc.y) + (acc.z + acc.w);
}
