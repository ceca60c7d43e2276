// Direct 3D convolution, cross-correlation as in PyTorch; 2D runs as 3D with ID = KD = SD = 1, PD = 0.
// Constants: B, CI, CO; input ID, IH, IW; output OD, OH, OW; kernel KD x K x K; stride SD (depth), S;
// padding PD (depth), P; HAS_BIAS; NSPLIT, BPS (backward_weight: batches split into NSPLIT chunks of BPS).
// Layouts: X [B, CI, ID, IH, IW], Wt [CO, CI, KD, K, K], G and the forward output [B, CO, OD, OH, OW].
//
// Every entry owns its outputs (no atomics) and register-blocks 4 channels x 4 lanes: per tap it loads
// 4 weights (or gradients) and 4 inputs and does 16 FMAs. No workgroup memory, as in matmul.wgsl: on
// lavapipe the CPU caches already serve the reuse.
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Wt: array<f32>;
@group(0) @binding(2) var<storage, read> Bias: array<f32>;
@group(0) @binding(3) var<storage, read> G: array<f32>;
@group(0) @binding(4) var<storage, read_write> Out: array<f32>;

const WG: u32 = 64u;
const CB: u32 = 4u;
const PB: u32 = 4u;
const KVOL: u32 = KD * K * K;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }
fn ceil_div(a: u32, b: u32) -> u32 { return (a + b - 1u) / b; }
fn lanes(first: u32) -> vec4<u32> { return vec4<u32>(first, first + 1u, first + 2u, first + 3u); }

// One invocation: output channels co0..co0+3 at output columns ow0..ow0+3 of one (b, od, oh) row.
@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let nwb = ceil_div(OW, PB);
  let ncb = ceil_div(CO, CB);
  var t = flat(gid, nwg);
  if (t >= B * ncb * OD * OH * nwb) { return; }
  // Column blocks vary fastest so a workgroup shares its weights.
  let wb = t % nwb; t = t / nwb;
  let oh = t % OH; t = t / OH;
  let od = t % OD; t = t / OD;
  let cb = t % ncb;
  let b = t / ncb;
  let ow0 = wb * PB;
  let co0 = cb * CB;
  // Edge blocks clamp their channels so every load is valid; the extra lanes are never stored.
  let wco = min(lanes(co0), vec4<u32>(CO - 1u)) * (CI * KVOL);
  let iwb = vec4<i32>(lanes(ow0) * S) - i32(P);
  var acc: array<vec4<f32>, 4>;
  for (var ci = 0u; ci < CI; ci++) {
    for (var kd = 0u; kd < KD; kd++) {
      let id = i32(od * SD + kd) - i32(PD);
      if (id < 0 || id >= i32(ID)) { continue; }
      for (var kh = 0u; kh < K; kh++) {
        let ih = i32(oh * S + kh) - i32(P);
        if (ih < 0 || ih >= i32(IH)) { continue; }
        let xrow = (((b * CI + ci) * ID + u32(id)) * IH + u32(ih)) * IW;
        let wrow = ((ci * KD + kd) * K + kh) * K;
        for (var kw = 0u; kw < K; kw++) {
          let iw = iwb + vec4<i32>(i32(kw));
          let ok = (iw >= vec4<i32>(0)) & (iw < vec4<i32>(i32(IW)));
          let xi = vec4<u32>(clamp(iw, vec4<i32>(0), vec4<i32>(i32(IW) - 1))) + xrow;
          let xv = select(vec4<f32>(0.0), vec4<f32>(X[xi.x], X[xi.y], X[xi.z], X[xi.w]), ok);
          let wi = wco + wrow + kw;
          acc[0] = fma(vec4<f32>(Wt[wi.x]), xv, acc[0]);
          acc[1] = fma(vec4<f32>(Wt[wi.y]), xv, acc[1]);
          acc[2] = fma(vec4<f32>(Wt[wi.z]), xv, acc[2]);
          acc[3] = fma(vec4<f32>(Wt[wi.w]), xv, acc[3]);
        }
      }
    }
  }
  for (var j = 0u; j < CB; j++) {
    let co = co0 + j;
    if (co >= CO) { break; }
    var v = acc[j];
    if (HAS_BIAS == 1u) { v += vec4<f32>(Bias[co]); }
    let orow = (((b * CO + co) * OD + od) * OH + oh) * OW;
    for (var l = 0u; l < PB; l++) {
      if (ow0 + l >= OW) { break; }
      Out[orow + ow0 + l] = v[l];
    }
  }
}

// dX: input channels ci0..ci0+3 at input columns iw0..iw0+3 of one (b, id, ih) row gather every output
// position whose window covered them (o * S + k - P = i), so no two invocations write the same element.
@compute @workgroup_size(WG)
fn backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let nwb = ceil_div(IW, PB);
  let ncb = ceil_div(CI, CB);
  var t = flat(gid, nwg);
  if (t >= B * ncb * ID * IH * nwb) { return; }
  let wb = t % nwb; t = t / nwb;
  let ih = t % IH; t = t / IH;
  let id = t % ID; t = t / ID;
  let cb = t % ncb;
  let b = t / ncb;
  let iw0 = wb * PB;
  let ci0 = cb * CB;
  let wci = min(lanes(ci0), vec4<u32>(CI - 1u)) * KVOL;
  let nwb0 = vec4<i32>(lanes(iw0)) + i32(P);
  var acc: array<vec4<f32>, 4>;
  for (var co = 0u; co < CO; co++) {
    for (var kd = 0u; kd < KD; kd++) {
      let nd = i32(id + PD) - i32(kd);
      if (nd < 0 || nd % i32(SD) != 0 || nd / i32(SD) >= i32(OD)) { continue; }
      let od = u32(nd) / SD;
      for (var kh = 0u; kh < K; kh++) {
        let nh = i32(ih + P) - i32(kh);
        if (nh < 0 || nh % i32(S) != 0 || nh / i32(S) >= i32(OH)) { continue; }
        let oh = u32(nh) / S;
        let grow = (((b * CO + co) * OD + od) * OH + oh) * OW;
        let wrow = co * CI * KVOL + (kd * K + kh) * K;
        for (var kw = 0u; kw < K; kw++) {
          let nw = nwb0 - vec4<i32>(i32(kw));
          let ow = nw / vec4<i32>(i32(S));
          let ok = (nw >= vec4<i32>(0)) & (ow * i32(S) == nw) & (ow < vec4<i32>(i32(OW)));
          let gi = vec4<u32>(clamp(ow, vec4<i32>(0), vec4<i32>(i32(OW) - 1))) + grow;
          let gv = select(vec4<f32>(0.0), vec4<f32>(G[gi.x], G[gi.y], G[gi.z], G[gi.w]), ok);
          let wi = wci + wrow + kw;
          acc[0] = fma(vec4<f32>(Wt[wi.x]), gv, acc[0]);
          acc[1] = fma(vec4<f32>(Wt[wi.y]), gv, acc[1]);
          acc[2] = fma(vec4<f32>(Wt[wi.z]), gv, acc[2]);
          acc[3] = fma(vec4<f32>(Wt[wi.w]), gv, acc[3]);
        }
      }
    }
  }
  for (var j = 0u; j < CB; j++) {
    let ci = ci0 + j;
    if (ci >= CI) { break; }
    let xrow = (((b * CI + ci) * ID + id) * IH + ih) * IW;
    for (var l = 0u; l < PB; l++) {
      if (iw0 + l >= IW) { break; }
      Out[xrow + iw0 + l] = acc[j][l];
    }
  }
}

// First output position o in [0, n) whose tap k lands inside the input: o * s + k - p >= 0.
fn first_valid(k: u32, p: u32, s: u32) -> u32 {
  if (k >= p) { return 0u; }
  return (p - k + s - 1u) / s;
}
// One past the last: o * s + k - p <= i - 1.
fn end_valid(i: u32, k: u32, p: u32, s: u32, n: u32) -> u32 {
  if (i + p < k + 1u) { return 0u; }
  return min(n, (i + p - k - 1u) / s + 1u);
}

// dW: one invocation per tap (kd, kh, kw) and 4x4 block of (co, ci), summing over its batch chunk and
// every output position; Out is [NSPLIT, CO, CI, KD, K, K] (the op sums the chunks).
@compute @workgroup_size(WG)
fn backward_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let ncib = ceil_div(CI, CB);
  let ncob = ceil_div(CO, CB);
  var t = flat(gid, nwg);
  if (t >= NSPLIT * ncob * ncib * KVOL) { return; }
  let tap = t % KVOL; t = t / KVOL;
  let cib = t % ncib; t = t / ncib;
  let cob = t % ncob;
  let split = t / ncob;
  let kw = tap % K;
  let kh = (tap / K) % K;
  let kd = tap / (K * K);
  let od0 = first_valid(kd, PD, SD);
  let od1 = end_valid(ID, kd, PD, SD, OD);
  let oh0 = first_valid(kh, P, S);
  let oh1 = end_valid(IH, kh, P, S, OH);
  let ow0 = first_valid(kw, P, S);
  let ow1 = end_valid(IW, kw, P, S, OW);
  let ci0 = cib * CB;
  let co0 = cob * CB;
  let xo = min(lanes(ci0), vec4<u32>(CI - 1u)) * (ID * IH * IW);
  let go = min(lanes(co0), vec4<u32>(CO - 1u)) * (OD * OH * OW);
  let b0 = split * BPS;
  let b1 = min(B, b0 + BPS);
  var acc: array<vec4<f32>, 4>;
  for (var b = b0; b < b1; b++) {
    let xb = b * CI * ID * IH * IW;
    let gb = b * CO * OD * OH * OW;
    for (var od = od0; od < od1; od++) {
      let id = od * SD + kd - PD;
      for (var oh = oh0; oh < oh1; oh++) {
        let ih = oh * S + kh - P;
        let xr = xb + (id * IH + ih) * IW + kw - P;
        let gr = gb + (od * OH + oh) * OW;
        for (var ow = ow0; ow < ow1; ow++) {
          let xi = xo + (xr + ow * S);
          let gi = go + (gr + ow);
          let xv = vec4<f32>(X[xi.x], X[xi.y], X[xi.z], X[xi.w]);
          acc[0] = fma(vec4<f32>(G[gi.x]), xv, acc[0]);
          acc[1] = fma(vec4<f32>(G[gi.y]), xv, acc[1]);
          acc[2] = fma(vec4<f32>(G[gi.z]), xv, acc[2]);
          acc[3] = fma(vec4<f32>(G[gi.w]), xv, acc[3]);
        }
      }
    }
  }
  let base = split * CO * CI * KVOL;
  for (var j = 0u; j < CB; j++) {
    let co = co0 + j;
    if (co >= CO) { break; }
    for (var i = 0u; i < CB; i++) {
      let ci = ci0 + i;
      if (ci >= CI) { break; }
      Out[base + (co * CI + ci) * KVOL + tap] = acc[j][i];
    }
  }
}

// dBias: one invocation per output channel; four partial sums shorten the dependency chain.
@compute @workgroup_size(WG)
fn backward_bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let co = flat(gid, nwg);
  if (co >= CO) { return; }
  let n = OD * OH * OW;
  var acc = vec4<f32>(0.0);
  for (var b = 0u; b < B; b++) {
    let base = (b * CO + co) * n;
    for (var s = 0u; s < n; s++) { acc[s & 3u] += G[base + s]; }
  }
  Out[co] = (acc.x + acc.y) + (acc.z + acc.w);
}
