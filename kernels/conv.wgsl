// Direct 3D convolution, cross-correlation as in PyTorch; 2D runs as 3D with ID = KD = SD = 1, PD = 0.
// Constants: B, CI, CO; input ID, IH, IW; output OD, OH, OW; kernel KD x K x K; stride SD (depth), S;
// padding PD (depth), P; HAS_BIAS; PB (output columns per forward invocation); NSPLIT, RPS
// (backward_weight: the B * OD * OH output rows are split into NSPLIT chunks of RPS rows).
// Layouts: X [B, CI, ID, IH, IW], Wt [CO, CI, KD, K, K], G and the forward output [B, CO, OD, OH, OW].
//
// Every entry owns its outputs (no atomics). On CPU rasterisers (lavapipe) every storage load costs
// about as much as several FMAs, whether or not its address is uniform, so the kernels are shaped to
// minimise loads per FMA: 4 channels per invocation, and a run of columns whose input window is loaded
// once into registers and reused across the K taps of a kernel row. No workgroup memory (as matmul.wgsl).
// Out-of-range taps read a clamped address and are masked with select.
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Wt: array<f32>;
@group(0) @binding(2) var<storage, read> Bias: array<f32>;
@group(0) @binding(3) var<storage, read> G: array<f32>;
@group(0) @binding(4) var<storage, read_write> Out: array<f32>;

const WG: u32 = 64u;
const CB: u32 = 4u;
const KVOL: u32 = KD * K * K;
const NIN: u32 = ID * IH * IW;
const NOUT: u32 = OD * OH * OW;
// Input columns spanned by the windows of PB consecutive output columns.
const XW: u32 = (PB - 1u) * S + K;
// backward_weight: output columns per chunk, and the input columns their windows span.
const DPB: u32 = 4u;
const DXW: u32 = (DPB - 1u) * S + K;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }
fn ceil_div(a: u32, b: u32) -> u32 { return (a + b - 1u) / b; }
fn lanes(first: u32) -> vec4<u32> { return vec4<u32>(first, first + 1u, first + 2u, first + 3u); }
fn inside(i: i32, n: u32) -> bool { return (i >= 0) & (i < i32(n)); }
fn clampi(i: i32, n: u32) -> u32 { return u32(clamp(i, 0, i32(n) - 1)); }

// One invocation: output channels co0..co0+3 at output columns ow0..ow0+PB-1 of one (b, od, oh) row.
// Column blocks vary fastest so neighbouring invocations share weights and input rows.
@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let nwb = ceil_div(OW, PB);
  let ncb = ceil_div(CO, CB);
  var t = flat(gid, nwg);
  if (t >= B * ncb * OD * OH * nwb) { return; }
  let wb = t % nwb; t = t / nwb;
  let oh = t % OH; t = t / OH;
  let od = t % OD; t = t / OD;
  let cb = t % ncb;
  let b = t / ncb;
  let ow0 = wb * PB;
  let co0 = cb * CB;
  // Edge blocks clamp their channels so every load is valid; the extra channels are never stored.
  let wco = min(lanes(co0), vec4<u32>(CO - 1u)) * (CI * KVOL);
  let iw0 = i32(ow0 * S) - i32(P);
  var acc: array<vec4<f32>, PB>;
  for (var ci = 0u; ci < CI; ci++) {
    for (var kd = 0u; kd < KD; kd++) {
      let id = i32(od * SD + kd) - i32(PD);
      for (var kh = 0u; kh < K; kh++) {
        let ih = i32(oh * S + kh) - i32(P);
        let okh = inside(id, ID) & inside(ih, IH);
        let row = (((b * CI + ci) * ID + clampi(id, ID)) * IH + clampi(ih, IH)) * IW;
        var xs: array<f32, XW>;
        for (var i = 0u; i < XW; i++) {
          let iw = iw0 + i32(i);
          xs[i] = select(0.0, X[row + clampi(iw, IW)], okh & inside(iw, IW));
        }
        let wrow = ((ci * KD + kd) * K + kh) * K;
        for (var kw = 0u; kw < K; kw++) {
          let wi = wco + wrow + kw;
          let w = vec4<f32>(Wt[wi.x], Wt[wi.y], Wt[wi.z], Wt[wi.w]);
          for (var l = 0u; l < PB; l++) { acc[l] = fma(w, vec4<f32>(xs[l * S + kw]), acc[l]); }
        }
      }
    }
  }
  for (var l = 0u; l < PB; l++) {
    let ow = ow0 + l;
    if (ow >= OW) { break; }
    for (var j = 0u; j < CB; j++) {
      let co = co0 + j;
      if (co >= CO) { break; }
      var v = acc[l][j];
      if (HAS_BIAS == 1u) { v += Bias[co]; }
      Out[(b * CO + co) * NOUT + (od * OH + oh) * OW + ow] = v;
    }
  }
}

// Out [CI, CO, KD, K, K] = Wt with input and output channels swapped and every tap mirrored: with it,
// dX of a stride-1 convolution is the forward convolution of G with padding K - 1 - P.
@compute @workgroup_size(WG)
fn flip_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = flat(gid, nwg);
  if (e >= CO * CI * KVOL) { return; }
  let tap = e % KVOL;
  let co = (e / KVOL) % CO;
  let ci = e / (KVOL * CO);
  Out[e] = Wt[(co * CI + ci) * KVOL + (KVOL - 1u - tap)];
}

// dX for strided convolutions: input channels ci0..ci0+3 at input columns iw0..iw0+3 of one (b, id, ih)
// row gather every output position whose window covered them (o * S + k - P = i).
@compute @workgroup_size(WG)
fn backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let nwb = ceil_div(IW, 4u);
  let ncb = ceil_div(CI, CB);
  var t = flat(gid, nwg);
  if (t >= B * ncb * ID * IH * nwb) { return; }
  let wb = t % nwb; t = t / nwb;
  let ih = t % IH; t = t / IH;
  let id = t % ID; t = t / ID;
  let cb = t % ncb;
  let b = t / ncb;
  let iw0 = wb * 4u;
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
    for (var l = 0u; l < 4u; l++) {
      if (iw0 + l >= IW) { break; }
      Out[xrow + iw0 + l] = acc[j][l];
    }
  }
}

// dW: one invocation per block of 4 output x 4 input channels and kernel row (kd, kh), all K taps of the
// row, summing over its chunk of output rows. Per chunk of DPB output columns it loads 4 x DPB gradients
// and 4 x DXW inputs into registers for 4 x 4 x K x DPB FMAs. Out is [NSPLIT, CO, CI, KD, K, K] (the op
// sums the chunks).
@compute @workgroup_size(WG)
fn backward_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let ncob = ceil_div(CO, CB);
  let ncib = ceil_div(CI, CB);
  var t = flat(gid, nwg);
  if (t >= NSPLIT * ncob * ncib * KD * K) { return; }
  let kh = t % K; t = t / K;
  let kd = t % KD; t = t / KD;
  let cib = t % ncib; t = t / ncib;
  let cob = t % ncob;
  let split = t / ncob;
  let ci0 = cib * CB;
  let co0 = cob * CB;
  let xo = min(lanes(ci0), vec4<u32>(CI - 1u)) * NIN;
  let go = min(lanes(co0), vec4<u32>(CO - 1u)) * NOUT;
  // acc[kw * 4 + j]: output channel co0 + j, tap kw, the 4 input channels in the vector.
  var acc: array<vec4<f32>, 4u * K>;
  let r0 = split * RPS;
  let r1 = min(B * OD * OH, r0 + RPS);
  for (var r = r0; r < r1; r++) {
    let oh = r % OH;
    let od = (r / OH) % OD;
    let b = r / (OH * OD);
    let id = i32(od * SD + kd) - i32(PD);
    let ih = i32(oh * S + kh) - i32(P);
    if (!(inside(id, ID) & inside(ih, IH))) { continue; }
    let xrow = b * CI * NIN + (u32(id) * IH + u32(ih)) * IW;
    let grow = b * CO * NOUT + (od * OH + oh) * OW;
    for (var ow0 = 0u; ow0 < OW; ow0 += DPB) {
      var gs: array<vec4<f32>, DPB>;
      for (var l = 0u; l < DPB; l++) {
        let gi = go + grow + min(ow0 + l, OW - 1u);
        gs[l] = select(vec4<f32>(0.0), vec4<f32>(G[gi.x], G[gi.y], G[gi.z], G[gi.w]), ow0 + l < OW);
      }
      let iw0 = i32(ow0 * S) - i32(P);
      var xs: array<vec4<f32>, DXW>;
      for (var n = 0u; n < DXW; n++) {
        let iw = iw0 + i32(n);
        let xi = xo + xrow + clampi(iw, IW);
        xs[n] = select(vec4<f32>(0.0), vec4<f32>(X[xi.x], X[xi.y], X[xi.z], X[xi.w]), inside(iw, IW));
      }
      for (var kw = 0u; kw < K; kw++) {
        for (var j = 0u; j < CB; j++) {
          var a = acc[kw * 4u + j];
          for (var l = 0u; l < DPB; l++) { a = fma(vec4<f32>(gs[l][j]), xs[l * S + kw], a); }
          acc[kw * 4u + j] = a;
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
      for (var kw = 0u; kw < K; kw++) {
        Out[base + (co * CI + ci) * KVOL + (kd * K + kh) * K + kw] = acc[kw * 4u + j][i];
      }
    }
  }
}

// dBias: one invocation per output channel; four partial sums shorten the dependency chain.
@compute @workgroup_size(WG)
fn backward_bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let co = flat(gid, nwg);
  if (co >= CO) { return; }
  var acc = vec4<f32>(0.0);
  for (var b = 0u; b < B; b++) {
    let base = (b * CO + co) * NOUT;
    for (var s = 0u; s < NOUT; s++) { acc[s & 3u] += G[base + s]; }
  }
  Out[co] = (acc.x + acc.y) + (acc.z + acc.w);
}
