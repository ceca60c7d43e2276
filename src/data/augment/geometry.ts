// Geometric transforms of one sample, channel-first Float32 (C×H×W or C×D×H×W), values in [0, 1].
// Index coordinates throughout: pixel (x, y) has its centre at (x, y); the image centre is
// ((W − 1)/2, (H − 1)/2). Everything outside the image reads 0 (black, −1 after normalisation),
// the fill of torchvision's RandomRotation, RandomCrop(padding) and RandAugment by default.

/** Reverses one spatial axis in place (axis 0 = first spatial dim after C). Exactly self-inverse. */
export function flip(x: Float32Array, shape: readonly number[], axis: number): Float32Array {
  const dims = shape.length - 1;
  if (axis < 0 || axis >= dims) throw new RangeError(`flip axis ${axis} for shape [${shape.join(', ')}]`);
  const len = shape[axis + 1]!;
  let outer = 1;
  for (let i = 0; i <= axis; i++) outer *= shape[i]!;
  let inner = 1;
  for (let i = axis + 2; i < shape.length; i++) inner *= shape[i]!;
  for (let o = 0; o < outer; o++) {
    const base = o * len * inner;
    for (let a = 0, b = len - 1; a < b; a++, b--) {
      const pa = base + a * inner;
      const pb = base + b * inner;
      for (let k = 0; k < inner; k++) {
        const t = x[pa + k]!;
        x[pa + k] = x[pb + k]!;
        x[pb + k] = t;
      }
    }
  }
  return x;
}

/** An inverse map in index coordinates: output pixel (x, y) reads the source at (a·x + b·y + c, d·x + e·y + f). */
export type Affine2d = readonly [a: number, b: number, c: number, d: number, e: number, f: number];

export type Interpolation = 'bilinear' | 'nearest';

/** 16.16 fixed point as PIL's affine_fixed rounds a coefficient. */
const FIX = (v: number): number => Math.floor(v * 65536 + 0.5);

/**
 * 2D inverse-mapped affine warp of a C×H×W image, zero outside. 'nearest' reads the pixel whose cell holds the
 * source point, ⌊s + ½⌋, computed as PIL's NEAREST affine transform does (libImaging/Geometry.c, affine_fixed):
 * in 16.16 fixed point, so that a source point exactly between two pixels resolves as in PIL, bit for bit.
 */
export function warp2d(src: Float32Array, shape: readonly number[], m: Affine2d, interp: Interpolation): Float32Array {
  const [C, H, W] = shape as [number, number, number];
  const [a, b, c, d, e, f] = m;
  const P = H * W;
  const out = new Float32Array(src.length);
  // PIL's coordinates put pixel centres at i + ½: its source at output pixel (x, y) is (a·x + b·y + c + ½, …).
  const [fa, fb, fc, fd, fe, ff] = [FIX(a), FIX(b), FIX(c + 0.5), FIX(d), FIX(e), FIX(f + 0.5)];
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const o = y * W + x;
      if (interp === 'nearest') {
        const ix = Math.floor((fc + x * fa + y * fb) / 65536);
        const iy = Math.floor((ff + x * fd + y * fe) / 65536);
        if (ix < 0 || ix >= W || iy < 0 || iy >= H) continue; // out is already 0
        const p = iy * W + ix;
        for (let ch = 0; ch < C; ch++) out[ch * P + o] = src[ch * P + p]!;
        continue;
      }
      const sx = a * x + b * y + c;
      const sy = d * x + e * y + f;
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const fx = sx - x0;
      const fy = sy - y0;
      // Tap weights; a tap outside the image reads 0.
      const inY0 = y0 >= 0 && y0 < H;
      const inY1 = y0 + 1 >= 0 && y0 + 1 < H;
      const inX0 = x0 >= 0 && x0 < W;
      const inX1 = x0 + 1 >= 0 && x0 + 1 < W;
      const w00 = inY0 && inX0 ? (1 - fy) * (1 - fx) : 0;
      const w01 = inY0 && inX1 ? (1 - fy) * fx : 0;
      const w10 = inY1 && inX0 ? fy * (1 - fx) : 0;
      const w11 = inY1 && inX1 ? fy * fx : 0;
      if (w00 === 0 && w01 === 0 && w10 === 0 && w11 === 0) continue;
      const p00 = y0 * W + x0;
      for (let ch = 0; ch < C; ch++) {
        const base = ch * P + p00;
        let v = 0;
        if (w00 !== 0) v += w00 * src[base]!;
        if (w01 !== 0) v += w01 * src[base + 1]!;
        if (w10 !== 0) v += w10 * src[base + W]!;
        if (w11 !== 0) v += w11 * src[base + W + 1]!;
        out[ch * P + o] = v;
      }
    }
  }
  return out;
}

/**
 * The inverse map of a rotation by `deg` degrees about the image centre, counter-clockwise as displayed (row 0
 * at the top), as torchvision's F.rotate and PIL's Image.rotate: the source of (x, y) is
 * centre + R(θ)·((x, y) − centre) with R = [[cos, −sin], [sin, cos]] in y-down coordinates.
 */
export function rotation2d(shape: readonly number[], deg: number): Affine2d {
  const t = (deg * Math.PI) / 180;
  const cos = Math.cos(t);
  const sin = Math.sin(t);
  const cx = (shape[2]! - 1) / 2;
  const cy = (shape[1]! - 1) / 2;
  return [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy];
}

/** Rotates a C×H×W image by `deg` degrees (counter-clockwise as displayed) about its centre, zero fill. */
export function rotate2d(x: Float32Array, shape: readonly number[], deg: number, interp: Interpolation = 'bilinear'): Float32Array {
  return warp2d(x, shape, rotation2d(shape, deg), interp);
}

type Mat3 = [[number, number, number], [number, number, number], [number, number, number]];

function matmul3(a: Mat3, b: Mat3): Mat3 {
  const r: Mat3 = [
    [0, 0, 0],
    [0, 0, 0],
    [0, 0, 0],
  ];
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 3; k++) r[i][j] += a[i][k] * b[k][j];
  return r;
}

/**
 * Rotates a C×D×H×W volume by `a` degrees about the D axis (in the H-W plane) and `b` degrees about the H axis
 * (in the D-W plane), trilinear, zero fill. Both are composed into one matrix so the volume is resampled once;
 * each has rotate2d's convention on its plane. Trilinear rather than nearest: nearest leaves stair artefacts
 * that a 28³ volume cannot afford.
 */
export function rotate3d(x: Float32Array, shape: readonly number[], a: number, b: number): Float32Array {
  const [C, D, H, W] = shape as [number, number, number, number];
  const ra = (a * Math.PI) / 180;
  const rb = (b * Math.PI) / 180;
  const [ca, sa, cb, sb] = [Math.cos(ra), Math.sin(ra), Math.cos(rb), Math.sin(rb)];
  // Forward rotations on (z, y, x): about D: y' = ca·y − sa·x, x' = sa·y + ca·x; about H: z' = cb·z − sb·x, x' = sb·z + cb·x.
  const Ra: Mat3 = [
    [1, 0, 0],
    [0, ca, -sa],
    [0, sa, ca],
  ];
  const Rb: Mat3 = [
    [cb, 0, -sb],
    [0, 1, 0],
    [sb, 0, cb],
  ];
  const R = matmul3(Rb, Ra);
  const out = new Float32Array(x.length);
  const cz = (D - 1) / 2;
  const cy = (H - 1) / 2;
  const cx = (W - 1) / 2;
  const HW = H * W;
  for (let z = 0; z < D; z++) {
    for (let y = 0; y < H; y++) {
      for (let xx = 0; xx < W; xx++) {
        const dz = z - cz;
        const dy = y - cy;
        const dx = xx - cx;
        // source = R^T · d  (columns of R)
        const sz = cz + R[0][0] * dz + R[1][0] * dy + R[2][0] * dx;
        const sy = cy + R[0][1] * dz + R[1][1] * dy + R[2][1] * dx;
        const sx = cx + R[0][2] * dz + R[1][2] * dy + R[2][2] * dx;
        const z0 = Math.floor(sz);
        const y0 = Math.floor(sy);
        const x0 = Math.floor(sx);
        const fz = sz - z0;
        const fy = sy - y0;
        const fx = sx - x0;
        for (let ch = 0; ch < C; ch++) {
          const base = ch * D * HW;
          let acc = 0;
          for (let k = 0; k < 8; k++) {
            const zi = z0 + (k >> 2);
            const yi = y0 + ((k >> 1) & 1);
            const xi = x0 + (k & 1);
            if (zi < 0 || zi >= D || yi < 0 || yi >= H || xi < 0 || xi >= W) continue;
            const w = (k >> 2 ? fz : 1 - fz) * ((k >> 1) & 1 ? fy : 1 - fy) * (k & 1 ? fx : 1 - fx);
            acc += w * x[base + zi * HW + yi * W + xi]!;
          }
          out[base + z * HW + y * W + xx] = acc;
        }
      }
    }
  }
  return out;
}

/**
 * Pad-and-crop (torchvision's RandomCrop(size, padding=p), fill 0): pads every spatial axis by `pad` zeros on both
 * sides and crops the original size back at `offsets` (one per spatial axis, each in 0..2·pad), i.e.
 * out[i] = in[i + offset − pad], 0 where that falls outside. Offsets of `pad` on every axis give the input back.
 */
export function padCrop(x: Float32Array, shape: readonly number[], pad: number, offsets: readonly number[]): Float32Array {
  const dims = shape.length - 1;
  if (offsets.length !== dims || offsets.some((o) => !Number.isInteger(o) || o < 0 || o > 2 * pad)) {
    throw new RangeError(`padCrop: offsets [${offsets.join(', ')}] for ${dims} axes and pad ${pad}`);
  }
  const out = new Float32Array(x.length);
  const C = shape[0]!;
  const sizes = shape.slice(1);
  const shift = offsets.map((o) => o - pad);
  // Treat 2D as 3D with D = 1 and no shift along it.
  const [D, H, W] = dims === 3 ? (sizes as [number, number, number]) : [1, sizes[0]!, sizes[1]!];
  const [sz, sy, sx] = dims === 3 ? (shift as [number, number, number]) : [0, shift[0]!, shift[1]!];
  const HW = H * W;
  for (let ch = 0; ch < C; ch++) {
    const base = ch * D * HW;
    for (let z = 0; z < D; z++) {
      const iz = z + sz;
      if (iz < 0 || iz >= D) continue;
      for (let y = 0; y < H; y++) {
        const iy = y + sy;
        if (iy < 0 || iy >= H) continue;
        const x0 = Math.max(0, -sx);
        const x1 = Math.min(W, W - sx);
        if (x1 <= x0) continue;
        const from = base + iz * HW + iy * W + x0 + sx;
        out.set(x.subarray(from, from + (x1 - x0)), base + z * HW + y * W + x0);
      }
    }
  }
  return out;
}
