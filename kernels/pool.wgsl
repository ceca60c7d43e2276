// Pooling and nearest-neighbour upsampling between a fine grid [BC, FD, FH, FW] and a coarse grid
// [BC, CD, CH, CW], where coarse cell (d, h, w) covers fine cells [d*KD, d*KD + KD) x ... (window = stride).
// Fine cells past the last whole window (FD > CD*KD) belong to no cell. MEAN: 1 divides by the window.
// coarse_sum:  avg pool (MEAN=1), global avg pool (window = the whole volume), upsample backward (MEAN=0).
// fine_spread: avg pool backward (MEAN=1), upsample forward (MEAN=0).
// max_forward / max_backward: the backward recomputes the window's argmax (first maximum wins), so the
// forward stores no indices. Every entry owns its output element (no atomics).
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read_write> Out: array<f32>;

const WG: u32 = 64u;
const VOL: u32 = KD * KH * KW;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

// Index of the first fine cell of coarse cell o (flat over BC, CD, CH, CW).
fn window_base(o: u32) -> u32 {
  var t = o;
  let w = t % CW; t = t / CW;
  let h = t % CH; t = t / CH;
  let d = t % CD;
  let bc = t / CD;
  return ((bc * FD + d * KD) * FH + h * KH) * FW + w * KW;
}

// The coarse cell holding fine cell i, or BC * CD * CH * CW if it lies past the last whole window.
fn coarse_of(i: u32) -> u32 {
  var t = i;
  let w = (t % FW) / KW; t = t / FW;
  let h = (t % FH) / KH; t = t / FH;
  let d = (t % FD) / KD;
  let bc = t / FD;
  if (w >= CW || h >= CH || d >= CD) { return BC * CD * CH * CW; }
  return ((bc * CD + d) * CH + h) * CW + w;
}

@compute @workgroup_size(WG)
fn coarse_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = flat(gid, nwg);
  if (o >= BC * CD * CH * CW) { return; }
  let base = window_base(o);
  // Row sums first: a shorter rounding chain than one running sum over a whole volume.
  var s = 0.0;
  for (var kd = 0u; kd < KD; kd++) {
    for (var kh = 0u; kh < KH; kh++) {
      let row = base + (kd * FH + kh) * FW;
      var r = 0.0;
      for (var kw = 0u; kw < KW; kw++) { r += X[row + kw]; }
      s += r;
    }
  }
  if (MEAN == 1u) { s = s / f32(VOL); }
  Out[o] = s;
}

@compute @workgroup_size(WG)
fn fine_spread(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= BC * FD * FH * FW) { return; }
  let o = coarse_of(i);
  var v = 0.0;
  if (o < BC * CD * CH * CW) {
    v = X[o];
    if (MEAN == 1u) { v = v / f32(VOL); }
  }
  Out[i] = v;
}

// Offset inside the window (kd, kh, kw flattened) of its first maximum.
fn argmax(base: u32) -> u32 {
  var best = X[base];
  var at = 0u;
  for (var kd = 0u; kd < KD; kd++) {
    for (var kh = 0u; kh < KH; kh++) {
      let row = base + (kd * FH + kh) * FW;
      for (var kw = 0u; kw < KW; kw++) {
        let v = X[row + kw];
        if (v > best) {
          best = v;
          at = (kd * KH + kh) * KW + kw;
        }
      }
    }
  }
  return at;
}

fn window_offset(at: u32) -> u32 {
  return ((at / (KH * KW)) * FH + (at / KW) % KH) * FW + at % KW;
}

@compute @workgroup_size(WG)
fn max_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = flat(gid, nwg);
  if (o >= BC * CD * CH * CW) { return; }
  let base = window_base(o);
  Out[o] = X[base + window_offset(argmax(base))];
}

@compute @workgroup_size(WG)
fn max_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= BC * FD * FH * FW) { return; }
  let o = coarse_of(i);
  var v = 0.0;
  if (o < BC * CD * CH * CW) {
    let base = window_base(o);
    if (base + window_offset(argmax(base)) == i) { v = G[o]; }
  }
  Out[i] = v;
}
