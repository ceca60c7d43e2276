// 8-bit grayscale PNG encoding (the montages and example strips the brain kinds and `mf fuse` write).
import { zlibSync } from 'fflate';
import { ShapeError } from '../errors.ts';
import { crc32 } from './crc32.ts';

/** An 8-bit grayscale PNG (no interlace, filter 0 on every row). */
export function encodePng(gray: Uint8Array, width: number, height: number): Uint8Array {
  if (gray.length !== width * height) throw new ShapeError(`PNG: ${gray.length} pixels for ${width}×${height}`);
  const raw = new Uint8Array((width + 1) * height);
  for (let y = 0; y < height; y++) raw.set(gray.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr.set([8, 0, 0, 0, 0], 8); // bit depth 8, grayscale, deflate, filter method 0, no interlace
  const chunks = [chunk('IHDR', ihdr), chunk('IDAT', zlibSync(raw, { level: 6 })), chunk('IEND', new Uint8Array(0))];
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  const out = new Uint8Array(8 + chunks.reduce((s, c) => s + c.length, 0));
  out.set(sig);
  let o = 8;
  for (const c of chunks) out.set(c, o), (o += c.length);
  return out;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const c = new Uint8Array(12 + data.length);
  const dv = new DataView(c.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) c[4 + i] = type.charCodeAt(i);
  c.set(data, 8);
  dv.setUint32(8 + data.length, crc32(c.subarray(4, 8 + data.length))); // CRC over type + data
  return c;
}
