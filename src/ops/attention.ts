// Fused multi-head attention: one kernel forward (online softmax, no score matrix), two backward
// kernels that recompute the probabilities from the saved log-sum-exp (flash-attention-2 style).
import { ATTENTION_MAX_DH, attentionLaunch } from '../backend/kernels/attention.ts';
import { MAX_GROUPS } from '../backend/kernel.ts';
import { ShapeError } from '../errors.ts';
import { isGradEnabled, record, shapeStr, Tensor } from '../tensor/tensor.ts';
import { fill } from './elementwise.ts';
import { launch } from './launch.ts';

/** Copy [..., H * from] to [..., H * to] per head slice, zero-filling (no autograd). */
function repad(x: Tensor, H: number, from: number, to: number): Tensor {
  const rows = x.size / (H * from);
  const out = Tensor.empty([...x.shape.slice(0, -1), H * to]);
  launch('attention', 'repad', { NOUT: rows * H * to, SRC_W: from, DST_W: to }, { src: x, dst: out });
  return out;
}

/**
 * softmax(q kᵀ / sqrt(Dh)) v per head. q: [B, Lq, H*Dh], k and v: [B, Lk, H*Dh]; head h is the slice
 * [h*Dh, (h+1)*Dh) of the last dim. Serves self-attention (Lq = Lk) and cross-attention (Lq ≠ Lk).
 * Returns [B, Lq, H*Dh].
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, numHeads: number): Tensor {
  const op = 'attention';
  const fail = (why: string): never => {
    throw new ShapeError(`${op}: ${why}: q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)}, v ${shapeStr(v.shape)}, numHeads ${numHeads}`);
  };
  if (q.shape.length !== 3 || k.shape.length !== 3 || v.shape.length !== 3) fail('need [batch, length, heads*headDim] operands');
  const [B, LQ, HD] = q.shape;
  const LK = k.shape[1];
  if (k.shape[0] !== B || v.shape[0] !== B) fail('batch sizes differ');
  if (v.shape[1] !== LK) fail('k and v lengths differ');
  if (k.shape[2] !== HD || v.shape[2] !== HD) fail('widths differ');
  if (!Number.isInteger(numHeads) || numHeads < 1 || HD % numHeads !== 0) fail('width is not a multiple of numHeads');
  const H = numHeads;
  const DH = HD / H;
  if (DH > ATTENTION_MAX_DH) fail(`head width ${DH} exceeds ${ATTENTION_MAX_DH}`);
  if (LK === 0 && LQ > 0) fail('no keys to attend to');
  if (B > MAX_GROUPS || H > MAX_GROUPS) fail(`batch and heads must each be at most ${MAX_GROUPS}`);
  for (const t of [q, k, v]) t.assertLive(op);
  if (B === 0 || LQ === 0) {
    // Nothing attends: keys and values get zero gradients (the kernels cannot bind empty buffers).
    return record(Tensor.empty([B, LQ, HD]), op, [q, k, v], () => [Tensor.empty(q.shape), fill(k.shape, 0), fill(v.shape, 0)]);
  }

  // The kernels read head slices as vec4: other widths run on zero-padded copies, which leave the
  // scores unchanged (the scale still uses the true width) and give zero outputs in the padding.
  const DP = Math.ceil(DH / 4) * 4;
  const padded = DP !== DH;
  const pad = (x: Tensor): Tensor => (padded ? repad(x, H, DH, DP) : x);
  const unpad = (x: Tensor): Tensor => {
    if (!padded) return x;
    const y = repad(x, H, DP, DH);
    x.dispose();
    return y;
  };
  const base = { B, LQ, LK, H, DH: DP };
  const fc = { SCALE: Math.fround(1 / Math.sqrt(DH)) };

  const needGrad = isGradEnabled() && [q, k, v].some((t) => t.requiresGrad);
  const [qp, kp, vp] = [pad(q), pad(k), pad(v)];
  const outp = Tensor.empty([B, LQ, H * DP]);
  // The log-sum-exp is written even without gradients (B·H·LQ floats): evaluation then runs the pipeline the
  // training step compiled instead of a SAVE_LSE=0 specialisation of its own (seconds of LLVM on lavapipe).
  const lse = Tensor.empty([B, H, LQ]);
  launch(op, 'forward', { ...base, ...attentionLaunch(LQ, DP, false), SAVE_LSE: 1 }, { q: qp, k: kp, v: vp, out: outp, lse }, fc);
  if (!needGrad) {
    lse.dispose();
    if (padded) [qp, kp, vp].forEach((t) => t.dispose());
    return unpad(outp);
  }
  const out = padded ? repad(outp, H, DP, DH) : outp;

  return record(out, op, [q, k, v], (g) => {
    const gp = pad(g);
    const dq = q.requiresGrad ? Tensor.empty(qp.shape) : null;
    const dk = k.requiresGrad ? Tensor.empty(kp.shape) : null;
    const dv = v.requiresGrad ? Tensor.empty(vp.shape) : null;
    // D_i = dO_i . O_i, needed by both backward kernels; backward_q writes it (and dQ when wanted).
    const D = Tensor.empty([B, H, LQ]);
    const qkv = { q: qp, k: kp, v: vp };
    launch(
      op,
      'backward_q',
      { ...base, ...attentionLaunch(LQ, DP, true), DQ_ON: dq ? 1 : 0 },
      { ...qkv, outIn: outp, lseIn: lse, dOut: gp, dq, delta: D },
      fc,
    );
    if (dk || dv) {
      const consts = { ...base, ...attentionLaunch(LK, DP, true), DK_ON: dk ? 1 : 0, DV_ON: dv ? 1 : 0 };
      launch(op, 'backward_kv', consts, { ...qkv, lseIn: lse, dOut: gp, deltaIn: D, dk, dv }, fc);
    }
    D.dispose();
    if (gp !== g) gp.dispose();
    return [dq && unpad(dq), dk && unpad(dk), dv && unpad(dv)];
  });
}
