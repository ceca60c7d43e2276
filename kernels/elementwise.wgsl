// Elementwise family: unary maps, binary ops with NumPy broadcasting, fill, and in-place accumulate.
// Constants: N (output elements); for `unary` OP and fconsts ALPHA, BETA; for `binary` OP, the output
// shape O0..O5 and per-dimension strides of each operand SA0..SA5, SB0..SB5 (0 where it broadcasts),
// all padded on the left to rank 6; for `fill` the fconst VALUE.
// N arrives at run time (`var<private>`, filled by the prelude's `load_dims` from the MF_DIMS uniform): it only
// bounds the threads, so `unary`, `fill` and `add_inplace` compile once per operation, not once per tensor size.
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Y: array<f32>;
@group(0) @binding(2) var<storage, read_write> Out: array<f32>;

var<private> N: u32;

const WG: u32 = 256u;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

fn gelu(x: f32) -> f32 {
  let u = clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -15.0, 15.0);
  return 0.5 * x * (1.0 + tanh(u));
}

fn gelu_grad(x: f32) -> f32 {
  let raw = 0.7978845608028654 * (x + 0.044715 * x * x * x);
  let u = clamp(raw, -15.0, 15.0);
  let t = tanh(u);
  var du = 0.0;
  if (raw == u) { du = 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x * x); }
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du;
}

fn sigmoid(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}

// OP: 0 affine (ALPHA*x+BETA), 1 exp, 2 log, 3 sqrt, 4 relu, 5 gelu, 6 sigmoid, 7 tanh, 8 square, 9 abs, 10 rsqrt
@compute @workgroup_size(WG)
fn unary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  load_dims();
  let i = flat_id(gid, nwg);
  if (i >= N) { return; }
  let x = X[i];
  var v: f32;
  switch OP {
    case 0u: { v = ALPHA * x + BETA; }
    case 1u: { v = exp(x); }
    case 2u: { v = log(x); }
    case 3u: { v = sqrt(x); }
    case 4u: { v = max(x, 0.0); }
    case 5u: { v = gelu(x); }
    case 6u: { v = sigmoid(x); }
    case 7u: { v = tanh(clamp(x, -15.0, 15.0)); }
    case 8u: { v = x * x; }
    case 9u: { v = abs(x); }
    default: { v = inverseSqrt(x); }
  }
  Out[i] = v;
}

// OP: 0 add, 1 sub, 2 mul, 3 div, 4 max, 5 gelu_grad (x=pre-activation, y=upstream grad),
//     6 relu_grad (x=input, y=upstream grad), 7 min, 8 x alone (broadcast copy: expand)
@compute @workgroup_size(WG)
fn binary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  load_dims();
  let i = flat_id(gid, nwg);
  if (i >= N) { return; }
  let dims = array<u32, 6>(O0, O1, O2, O3, O4, O5);
  let sa = array<u32, 6>(SA0, SA1, SA2, SA3, SA4, SA5);
  let sb = array<u32, 6>(SB0, SB1, SB2, SB3, SB4, SB5);
  var rem = i;
  var ia = 0u;
  var ib = 0u;
  for (var d = 5i; d >= 0; d--) {
    let c = rem % dims[d];
    rem = rem / dims[d];
    ia += c * sa[d];
    ib += c * sb[d];
  }
  let x = X[ia];
  let y = Y[ib];
  var v: f32;
  switch OP {
    case 0u: { v = x + y; }
    case 1u: { v = x - y; }
    case 2u: { v = x * y; }
    case 3u: { v = x / y; }
    case 4u: { v = max(x, y); }
    case 5u: { v = gelu_grad(x) * y; }
    case 6u: { v = select(0.0, y, x > 0.0); }
    case 7u: { v = min(x, y); }
    default: { v = x + 0.0 * y; }
  }
  Out[i] = v;
}

@compute @workgroup_size(WG)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  load_dims();
  let i = flat_id(gid, nwg);
  if (i >= N) { return; }
  Out[i] = VALUE;
}

/** Out += X: gradient accumulation into a parameter's gradient view without a copy. */
@compute @workgroup_size(WG)
fn add_inplace(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  load_dims();
  let i = flat_id(gid, nwg);
  if (i >= N) { return; }
  Out[i] = Out[i] + X[i];
}
