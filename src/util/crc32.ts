// CRC-32 (IEEE, as zip, gzip and PNG use). Node (20.15 and later) has a native one in node:zlib; it is taken
// through process.getBuiltinModule, not an import, so that this module stays browser-safe (the page checks the
// gzip trailer of a dropped .nii.gz with it) and the table loop runs where there is no Node. `crc` continues a
// running checksum.

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

type Crc32Fn = (data: Uint8Array, value?: number) => number;
interface NodeProcessLike {
  getBuiltinModule?: (id: string) => { crc32?: Crc32Fn } | undefined;
}
const nodeProcess = (globalThis as { process?: NodeProcessLike }).process;
const nativeCrc32 = nodeProcess?.getBuiltinModule?.('node:zlib')?.crc32;

export function crc32(bytes: Uint8Array, crc = 0): number {
  if (nativeCrc32) return nativeCrc32(bytes, crc) >>> 0;
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
