// The CPU reference backend: every kernel's plain-TypeScript reference run on Float32Arrays.
// It is the oracle in tests and the fallback when no WebGPU adapter exists.
import type { Backend, DeviceBuffer, KernelCall, PoolStats } from './backend.ts';
import { VIEW_ALIGN } from './backend.ts';
import { kernelEntry } from './kernels/index.ts';

class CpuBuffer implements DeviceBuffer {
  constructor(
    readonly bytes: ArrayBuffer,
    readonly byteOffset: number,
    readonly byteSize: number,
    readonly owned: boolean,
  ) {}
  f32(): Float32Array {
    return new Float32Array(this.bytes, this.byteOffset, Math.floor(this.byteSize / 4));
  }
}

export class CpuBackend implements Backend {
  readonly name = 'cpu' as const;
  private counters: PoolStats = { liveBytes: 0, peakBytes: 0, created: 0, dispatches: 0, bindGroupsCreated: 0, pipelines: 0 };

  describe(): string {
    return 'cpu: plain TypeScript reference kernels (slow; no WebGPU adapter in use)';
  }

  alloc(byteSize: number): DeviceBuffer {
    const size = Math.max(4, Math.ceil(byteSize / 4) * 4);
    this.counters.liveBytes += size;
    this.counters.created++;
    this.counters.peakBytes = Math.max(this.counters.peakBytes, this.counters.liveBytes);
    return new CpuBuffer(new ArrayBuffer(size), 0, byteSize, true);
  }

  view(parent: DeviceBuffer, byteOffset: number, byteSize: number): DeviceBuffer {
    const p = parent as CpuBuffer;
    if (byteOffset % VIEW_ALIGN !== 0) throw new Error(`view offset ${byteOffset} is not a multiple of ${VIEW_ALIGN}`);
    if (byteOffset + byteSize > p.byteSize) throw new Error(`view [${byteOffset}, +${byteSize}) outside a ${p.byteSize}-byte buffer`);
    return new CpuBuffer(p.bytes, p.byteOffset + byteOffset, byteSize, false);
  }

  free(buffer: DeviceBuffer): void {
    const b = buffer as CpuBuffer;
    if (b.owned) this.counters.liveBytes -= b.bytes.byteLength;
  }

  write(buffer: DeviceBuffer, data: ArrayBufferView): void {
    const b = buffer as CpuBuffer;
    if (data.byteLength > b.byteSize) throw new Error(`write of ${data.byteLength} bytes into a ${b.byteSize}-byte buffer`);
    new Uint8Array(b.bytes, b.byteOffset, data.byteLength).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }

  async read(buffer: DeviceBuffer): Promise<ArrayBuffer> {
    const b = buffer as CpuBuffer;
    return b.bytes.slice(b.byteOffset, b.byteOffset + b.byteSize);
  }

  run(call: KernelCall): void {
    const e = kernelEntry(call.kernel, call.entry);
    const views: Record<string, Float32Array> = {};
    for (const s of e.slots) {
      const b = call.buffers[s.binding];
      views[s.name] = b ? (b as CpuBuffer).f32() : new Float32Array(0);
    }
    e.reference(call.consts, call.fconsts ?? {}, views, call.uniforms ?? []);
    this.counters.dispatches++;
  }

  async sync(): Promise<void> {}

  stats(): PoolStats {
    return { ...this.counters };
  }

  resetPeak(): void {
    this.counters.peakBytes = this.counters.liveBytes;
  }

  destroy(): void {}
}
