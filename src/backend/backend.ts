// The one seam between tensors/autograd and a device. Tensors, ops and models never touch GPUDevice:
// they allocate opaque buffers and run named kernels. The WebGPU runtime and the CPU reference backend
// are siblings behind this interface (the jax-js backend pattern).

/** Integer specialisation constants baked into a kernel (shapes, flags). Injected as WGSL `const NAME: u32`. */
export type Consts = Readonly<Record<string, number>>;
/** Float specialisation constants (epsilons, scales). Injected as WGSL `const NAME: f32`. */
export type FConsts = Readonly<Record<string, number>>;

/** An opaque device buffer, or a byte range of one (parameter arenas hand out views). */
export interface DeviceBuffer {
  readonly byteSize: number;
}

export interface KernelCall {
  /** Kernel family: `kernels/<kernel>.wgsl`, registered in src/backend/kernels. */
  kernel: string;
  /** Entry point inside the family. */
  entry: string;
  consts: Consts;
  fconsts?: FConsts;
  /**
   * Binding i of group 0 is buffers[i]; null where the entry point has no binding i. Built from named
   * buffers and checked against the entry's declaration by `bindCall` (src/backend/bind.ts).
   */
  buffers: (DeviceBuffer | null)[];
  /** Values that change from call to call (learning rate, step): group 1 binding 0, an array of f32. */
  uniforms?: readonly number[];
}

export interface PoolStats {
  /** Bytes held by live tensors and arenas. */
  liveBytes: number;
  /** Highest liveBytes seen. */
  peakBytes: number;
  /** Buffers created on the device since start (a flat count in a loop means the pool works). */
  created: number;
  dispatches: number;
  /** Group-0 bind groups created (WebGPU; the rest were reused from its cache). */
  bindGroupsCreated: number;
  /** Kernel specialisations compiled so far (WebGPU pipelines; 0 on the CPU). */
  pipelines: number;
}

export interface Backend {
  readonly name: 'webgpu' | 'cpu';
  /** One line saying what this backend runs on. */
  describe(): string;
  alloc(byteSize: number): DeviceBuffer;
  /** A sub-range of a buffer; byteOffset must be a multiple of 256. Freed with its parent, never alone. */
  view(parent: DeviceBuffer, byteOffset: number, byteSize: number): DeviceBuffer;
  free(buffer: DeviceBuffer): void;
  write(buffer: DeviceBuffer, data: ArrayBufferView): void;
  /** The only point where the CPU waits for the device. */
  read(buffer: DeviceBuffer): Promise<ArrayBuffer>;
  run(call: KernelCall): void;
  /** Submit everything encoded so far and wait for it. */
  sync(): Promise<void>;
  stats(): PoolStats;
  /** Restart the high-water mark at the current live bytes (per-case peaks in benchmarks). */
  resetPeak(): void;
  destroy(): void;
}

/** Byte offsets of arena views are aligned to this (WebGPU's minStorageBufferOffsetAlignment). */
export const VIEW_ALIGN = 256;
