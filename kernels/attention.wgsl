// Fused multi-head scaled dot-product attention, softmax(q kᵀ / sqrt(d)) v, forward and backward.
// Heads are contiguous DH-wide slices of the last dim (the layout a linear projection writes), so
// row r of head h starts at r * H * DH + h * DH: no transposes. DH is a multiple of 4 here (the op pads
// other widths with `repad`) so rows are read as vec4: CPU rasterisers (lavapipe) pay per load
// instruction and per lane, so one vec4 load costs about what one f32 load does.
// Constants: H, DH, R (rows per invocation), T (rows per staged tile), WG (invocations per workgroup),
// DYN (keep the loops over a head rolled), fconst SCALE (1/sqrt of the unpadded head width); flags
// SAVE_LSE (forward), DQ_ON (backward_q), DK_ON and DV_ON (backward_kv); for repad NOUT, SRC_W, DST_W.
// At run time: B, LQ, LK (see below).
//
// Work split: a workgroup covers R * WG consecutive rows of one (batch, head) from workgroup_id (query
// rows in forward and backward_q, key rows in backward_kv). Each invocation owns R rows and keeps their
// operands and accumulators in private arrays, so every value streamed in is used R times from
// registers. The streamed rows (K and V, or Q and dO) are staged T at a time in workgroup memory: the
// workgroup reads each from the storage buffer once instead of once per invocation. Rows past the end
// are clamped (computed, never stored) so control flow stays uniform around the barriers.
//
// Forward: online softmax (running max m and sum l per row), so no LQ x LK score matrix exists; it
// writes the log-sum-exp per (b, h, query row) to Lse for the backward, which recomputes
// p = exp(s - lse) (flash-attention-2): backward_q writes D_i = dO_i . O_i and dQ; backward_kv reads D
// and loops over the queries for dK and dV. Every output element has exactly one writer (no atomics).
// Dot products keep 4 partial sums (the vec4 lanes) added as (x + y) + (z + w); the CPU reference
// does the same, so both agree to rounding.
@group(0) @binding(0) var<storage, read> Q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> K: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> V: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> O: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> Lse: array<f32>;
@group(0) @binding(5) var<storage, read> Oin: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> LseIn: array<f32>;
@group(0) @binding(7) var<storage, read> dO: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> dQ: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> Dout: array<f32>;
@group(0) @binding(10) var<storage, read> Din: array<f32>;
@group(0) @binding(11) var<storage, read_write> dK: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read_write> dV: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read> Src: array<f32>;
@group(0) @binding(14) var<storage, read_write> Dst: array<f32>;

const DH4: u32 = DH / 4u;
const HD4: u32 = H * DH4;
const TD: u32 = T * DH4;

// B, LQ and LK arrive at run time (filled by the prelude's `load_dims` from the MF_DIMS uniform), so one pipeline
// serves every batch size and sequence length of a head width: on lavapipe each attention pipeline costs seconds of
// LLVM. Baked in, they also let LLVM unroll the loop over staged rows T-fold around the unrolled head loops (tens of
// seconds per entry). The loops that hold barriers take their bound from `dim_LK()` / `dim_LQ()`, which read the
// uniform buffer itself: WGSL's uniformity analysis rejects a `var<private>` bound around a barrier.
var<private> B: u32;
var<private> LQ: u32;
var<private> LK: u32;

// Staged rows: K and V (forward, backward_q) or SCALE * Q and dO (backward_kv), plus lse and D.
var<workgroup> ta: array<vec4<f32>, TD>;
var<workgroup> tb: array<vec4<f32>, TD>;
var<workgroup> tl: array<f32, T>;
var<workgroup> td: array<f32, T>;

// DH4, hidden from the shader compiler when DYN is set so that the loops over a head stay rolled: fully
// unrolled, a 128-wide head takes LLVM 5-10 s per entry on lavapipe; rolled it compiles in under 2 s and
// runs 1.5-2x slower (the private arrays are then indexed per lane). Q is bound and non-empty in every
// entry that calls this.
fn head_chunks() -> u32 {
  if (DYN == 1u) { return DH4 * min(arrayLength(&Q), 1u); }
  return DH4;
}

fn hsum(v: vec4<f32>) -> f32 {
  return (v.x + v.y) + (v.z + v.w);
}

// Key rows j0 .. j0 + T - 1 of head slice kb0 (clamped to the last key) into ta (K) and tb (V).
fn stage_kv(kb0: u32, j0: u32, lid: u32) {
  for (var e = lid; e < TD; e += WG) {
    let src = kb0 + min(j0 + e / DH4, LK - 1u) * HD4 + e % DH4;
    ta[e] = K[src];
    tb[e] = V[src];
  }
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  load_dims();
  let h = wg.y;
  let b = wg.z;
  let n4 = head_chunks();
  let row0 = (wg.x * WG + lid) * R;
  let kb0 = b * LK * HD4 + h * DH4;
  // q is pre-scaled once instead of scaling every score.
  var q: array<array<vec4<f32>, DH4>, R>;
  var acc: array<array<vec4<f32>, DH4>, R>;
  var m: array<f32, R>;
  var l: array<f32, R>;
  for (var r = 0u; r < R; r++) {
    let qb = (b * LQ + min(row0 + r, LQ - 1u)) * HD4 + h * DH4;
    for (var c = 0u; c < n4; c++) { q[r][c] = Q[qb + c] * SCALE; }
    // A finite stand-in for -inf: the first key's rescale factor exp(m - s) is exactly 0, never NaN.
    m[r] = -3.0e38;
  }

  let nk = dim_LK();
  for (var j0 = 0u; j0 < nk; j0 += T) {
    workgroupBarrier();
    stage_kv(kb0, j0, lid);
    workgroupBarrier();
    let nt = min(T, nk - j0);
    for (var t = 0u; t < nt; t++) {
      // Explicitly zeroed: a plain `var x: T;` inside a loop is zeroed only once on Dawn + lavapipe, not
      // on every iteration as WGSL specifies (checked on Mesa 25.0.7).
      var sv = array<vec4<f32>, R>();
      for (var c = 0u; c < n4; c++) {
        let kc = ta[t * DH4 + c];
        for (var r = 0u; r < R; r++) { sv[r] = fma(q[r][c], kc, sv[r]); }
      }
      var p: array<f32, R>;
      var cr: array<f32, R>;
      for (var r = 0u; r < R; r++) {
        let s = hsum(sv[r]);
        let mn = max(m[r], s);
        cr[r] = exp(m[r] - mn);
        p[r] = exp(s - mn);
        l[r] = fma(l[r], cr[r], p[r]);
        m[r] = mn;
      }
      for (var c = 0u; c < n4; c++) {
        let vc = tb[t * DH4 + c];
        for (var r = 0u; r < R; r++) { acc[r][c] = fma(vec4<f32>(p[r]), vc, acc[r][c] * cr[r]); }
      }
    }
  }

  for (var r = 0u; r < R; r++) {
    let row = row0 + r;
    if (row < LQ) {
      let ob = (b * LQ + row) * HD4 + h * DH4;
      let inv = 1.0 / l[r];
      for (var c = 0u; c < n4; c++) { O[ob + c] = acc[r][c] * inv; }
      if (SAVE_LSE == 1u) { Lse[(b * H + h) * LQ + row] = m[r] + log(l[r]); }
    }
  }
}

@compute @workgroup_size(WG)
fn backward_q(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  load_dims();
  let h = wg.y;
  let b = wg.z;
  let n4 = head_chunks();
  let row0 = (wg.x * WG + lid) * R;
  let kb0 = b * LK * HD4 + h * DH4;
  var q: array<array<vec4<f32>, DH4>, R>;
  var g: array<array<vec4<f32>, DH4>, R>;
  var acc: array<array<vec4<f32>, DH4>, R>;
  var lse: array<f32, R>;
  var di: array<f32, R>;
  for (var r = 0u; r < R; r++) {
    let i = min(row0 + r, LQ - 1u);
    let qb = (b * LQ + i) * HD4 + h * DH4;
    var dv = vec4<f32>(0.0);
    for (var c = 0u; c < n4; c++) {
      q[r][c] = Q[qb + c] * SCALE;
      g[r][c] = dO[qb + c];
      dv = fma(g[r][c], Oin[qb + c], dv);
    }
    di[r] = hsum(dv);
    lse[r] = LseIn[(b * H + h) * LQ + i];
  }

  if (DQ_ON == 1u) {
    let nk = dim_LK();
    for (var j0 = 0u; j0 < nk; j0 += T) {
      workgroupBarrier();
      stage_kv(kb0, j0, lid);
      workgroupBarrier();
      let nt = min(T, nk - j0);
      for (var t = 0u; t < nt; t++) {
        var kr: array<vec4<f32>, DH4>;
        var sv = array<vec4<f32>, R>();
        var dpv = array<vec4<f32>, R>();
        for (var c = 0u; c < n4; c++) {
          kr[c] = ta[t * DH4 + c];
          let vc = tb[t * DH4 + c];
          for (var r = 0u; r < R; r++) {
            sv[r] = fma(q[r][c], kr[c], sv[r]);
            dpv[r] = fma(g[r][c], vc, dpv[r]);
          }
        }
        var ds: array<f32, R>;
        for (var r = 0u; r < R; r++) { ds[r] = exp(hsum(sv[r]) - lse[r]) * (hsum(dpv[r]) - di[r]); }
        for (var c = 0u; c < n4; c++) {
          for (var r = 0u; r < R; r++) { acc[r][c] = fma(vec4<f32>(ds[r]), kr[c], acc[r][c]); }
        }
      }
    }
  }

  for (var r = 0u; r < R; r++) {
    let row = row0 + r;
    if (row < LQ) {
      Dout[(b * H + h) * LQ + row] = di[r];
      if (DQ_ON == 1u) {
        let qb = (b * LQ + row) * HD4 + h * DH4;
        for (var c = 0u; c < n4; c++) { dQ[qb + c] = acc[r][c] * SCALE; }
      }
    }
  }
}

@compute @workgroup_size(WG)
fn backward_kv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  load_dims();
  let h = wg.y;
  let b = wg.z;
  let n4 = head_chunks();
  let row0 = (wg.x * WG + lid) * R;
  let qb0 = b * LQ * HD4 + h * DH4;
  let lb = (b * H + h) * LQ;
  var k: array<array<vec4<f32>, DH4>, R>;
  var v: array<array<vec4<f32>, DH4>, R>;
  var ak: array<array<vec4<f32>, DH4>, R>;
  var av: array<array<vec4<f32>, DH4>, R>;
  for (var r = 0u; r < R; r++) {
    let kb = (b * LK + min(row0 + r, LK - 1u)) * HD4 + h * DH4;
    for (var c = 0u; c < n4; c++) {
      k[r][c] = K[kb + c];
      v[r][c] = V[kb + c];
    }
  }

  let nq = dim_LQ();
  for (var i0 = 0u; i0 < nq; i0 += T) {
    workgroupBarrier();
    for (var e = lid; e < TD; e += WG) {
      let src = qb0 + min(i0 + e / DH4, LQ - 1u) * HD4 + e % DH4;
      // SCALE * q rounded exactly as the forward formed it, so p matches what the forward normalised.
      ta[e] = Q[src] * SCALE;
      tb[e] = dO[src];
    }
    for (var e = lid; e < T; e += WG) {
      let i = min(i0 + e, LQ - 1u);
      tl[e] = LseIn[lb + i];
      td[e] = Din[lb + i];
    }
    workgroupBarrier();
    let nt = min(T, nq - i0);
    for (var t = 0u; t < nt; t++) {
      var qr: array<vec4<f32>, DH4>;
      var gr: array<vec4<f32>, DH4>;
      var sv = array<vec4<f32>, R>();
      var dpv = array<vec4<f32>, R>();
      for (var c = 0u; c < n4; c++) {
        qr[c] = ta[t * DH4 + c];
        gr[c] = tb[t * DH4 + c];
        for (var r = 0u; r < R; r++) {
          sv[r] = fma(qr[c], k[r][c], sv[r]);
          dpv[r] = fma(gr[c], v[r][c], dpv[r]);
        }
      }
      var p: array<f32, R>;
      var ds: array<f32, R>;
      for (var r = 0u; r < R; r++) {
        p[r] = exp(hsum(sv[r]) - tl[t]);
        ds[r] = p[r] * (hsum(dpv[r]) - td[t]);
      }
      for (var c = 0u; c < n4; c++) {
        for (var r = 0u; r < R; r++) {
          if (DV_ON == 1u) { av[r][c] = fma(vec4<f32>(p[r]), gr[c], av[r][c]); }
          // dK_j = sum_i ds_ij * SCALE * q_i.
          if (DK_ON == 1u) { ak[r][c] = fma(vec4<f32>(ds[r]), qr[c], ak[r][c]); }
        }
      }
    }
  }

  for (var r = 0u; r < R; r++) {
    let row = row0 + r;
    if (row < LK) {
      let kb = (b * LK + row) * HD4 + h * DH4;
      for (var c = 0u; c < n4; c++) {
        if (DK_ON == 1u) { dK[kb + c] = ak[r][c]; }
        if (DV_ON == 1u) { dV[kb + c] = av[r][c]; }
      }
    }
  }
}

// Copies rows of width SRC_W into rows of width DST_W (NOUT = rows * DST_W elements), zero-filling:
// pads head slices to a multiple of 4 for the kernels above and strips the padding from their results.
@compute @workgroup_size(64)
fn repad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  load_dims();
  let o = gid.x + gid.y * nwg.x * 64u;
  if (o >= NOUT) { return; }
  let d = o % DST_W;
  var x = 0.0;
  if (d < SRC_W) { x = Src[(o / DST_W) * SRC_W + d]; }
  Dst[o] = x;
}
