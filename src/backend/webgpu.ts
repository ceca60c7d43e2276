// The WebGPU runtime: caches one compute pipeline per kernel specialisation, pools storage buffers by size class,
// and batches dispatches into one command encoder. Reading back to the CPU is the only point where it waits.
// It runs wherever a GPUDevice exists: Node hands it one from Dawn (dawn.ts, with the kernels read from disk),
// a page one from navigator.gpu (with the kernels bundled, kernel-sources.ts). Nothing here imports Node.
import { DeviceLostError, GpuError, OutOfMemoryError } from '../errors.ts';
import type { Backend, DeviceBuffer, KernelCall, PoolStats } from './backend.ts';
import { VIEW_ALIGN } from './backend.ts';
import { constPrelude, runtimeConsts, runtimeValues, specKey } from './kernel.ts';
import { kernelEntry, KERNELS } from './kernels/index.ts';

class GpuBuffer implements DeviceBuffer {
  constructor(
    readonly buffer: GPUBuffer,
    readonly byteOffset: number,
    readonly byteSize: number,
    /** Size class of the pooled allocation; -1 for views. */
    readonly sizeClass: number,
  ) {}
}

/** Size classes of 4 steps per octave keep waste under 25% while letting similar sizes share buffers. */
function sizeClass(bytes: number): number {
  const b = Math.max(bytes, 256);
  const octave = 2 ** Math.floor(Math.log2(b));
  const step = octave / 4;
  return Math.ceil(b / step) * step;
}

/** Where the runtime gets a kernel family's WGSL (the text of kernels/<family>.wgsl). */
export type KernelSources = (family: string) => string;

export interface WebGpuInit {
  /** The WGSL of each kernel family. */
  sources: KernelSources;
  /** Objects the device depends on that the garbage collector must not free while it lives (Dawn's instance). */
  keepAlive?: object[];
  /** Hears the time of each pipeline creation (`MF_TRACE_COMPILE`). */
  onCompile?: (ms: number, key: string) => void;
}

/** Dispatches encoded before an automatic submit, so the device works while the CPU encodes. */
const DISPATCHES_PER_SUBMIT = 256;

/**
 * Per-call uniforms (learning rate, step) live in one arena buffer with a slot per dispatch of a submit, staged on the
 * host and written with one writeBuffer just before the submit (queue order puts it after the previous submit's
 * reads), instead of a buffer created and destroyed per dispatch. 256 bytes is WebGPU's uniform offset alignment.
 */
const UNIFORM_SLOT_BYTES = 256;

/** Group-0 bind groups kept for reuse; a training step repeats the same buffers in the same order. */
const BIND_GROUP_CACHE_LIMIT = 8192;

/** What compiling kernels has cost this backend so far (`mf bench compile`). */
export interface CompileStats {
  /** Compute pipelines created: one per kernel specialisation first used. */
  pipelines: number;
  /**
   * Milliseconds spent in createShaderModule + createComputePipeline. On lavapipe this is Dawn's and Mesa's
   * front end (and waits on the queue): llvmpipe generates the machine code at the pipeline's first dispatch.
   */
  compileMs: number;
  /** The specialisation key of every pipeline created, in creation order. */
  keys: string[];
}

export interface AdapterReport {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  backend: string;
  /** A CPU rasteriser by its name, or Dawn's fallback-adapter flag. */
  isSoftware: boolean;
  features: string[];
  limits: Record<string, number>;
}

const KEY_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

/** What `mf devices` and the page show of an adapter; `backendType` is the native API behind it, as the caller knows it. */
export function reportAdapter(adapter: GPUAdapter, backendType: string): AdapterReport {
  const info = adapter.info;
  const limits: Record<string, number> = {};
  for (const k of KEY_LIMITS) limits[k] = adapter.limits[k];
  const description = info.description || `${info.vendor} ${info.device}`.trim();
  const isSoftware = /llvmpipe|lavapipe|swiftshader|software/i.test(`${description} ${info.device} ${info.architecture}`);
  return {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description,
    backend: backendType,
    isSoftware: isSoftware || (info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter === true,
    features: [...adapter.features].sort(),
    limits,
  };
}

/**
 * The device the engine runs on, from any adapter (Dawn's or the browser's): the adapter's own limits for buffer
 * sizes, workgroup storage and storage bindings, which the defaults cap far below what large batches need.
 */
export async function requestEngineDevice(adapter: GPUAdapter): Promise<GPUDevice> {
  const want = [
    'maxBufferSize',
    'maxStorageBufferBindingSize',
    'maxComputeWorkgroupStorageSize',
    'maxComputeInvocationsPerWorkgroup',
    'maxStorageBuffersPerShaderStage',
  ] as const;
  const requiredLimits: Record<string, number> = {};
  for (const k of want) requiredLimits[k] = adapter.limits[k];
  // No optional features: with any of timestamp-query, subgroups or shader-f16 enabled, Dawn on
  // lavapipe (Mesa 25.0.7) aborts in a mutex assertion at the first dispatch.
  return adapter.requestDevice({ requiredLimits, requiredFeatures: [] });
}

export class WebGpuBackend implements Backend {
  readonly name = 'webgpu' as const;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly sourceCache = new Map<string, string>();
  private readonly pool = new Map<number, GPUBuffer[]>();
  private readonly staging: GPUBuffer[] = [];
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private encoded = 0;
  private lostReason: string | null = null;
  private firstError: string | null = null;
  private compileError: string | null = null;
  private counters: Omit<PoolStats, 'pipelines'> = { liveBytes: 0, peakBytes: 0, created: 0, dispatches: 0, bindGroupsCreated: 0 };
  private compileMs = 0;
  /** Per family, the constants its WGSL takes at run time (kernel.ts `runtimeConsts`). */
  private readonly runtime = new Map<string, readonly string[]>();
  /** Immutable `MF_DIMS` uniform buffers by their values, and group-1 bind groups by pipeline and values. */
  private readonly dimBuffers = new Map<string, GPUBuffer>();
  private readonly dimGroups = new Map<string, GPUBindGroup>();
  /** The uniform arena (UNIFORM_SLOT_BYTES per dispatch of a submit), its host copy, and its bind groups by pipeline and slot. */
  private uniformArena: GPUBuffer | null = null;
  private readonly uniformStage = new Float32Array((DISPATCHES_PER_SUBMIT * UNIFORM_SLOT_BYTES) / 4);
  private uniformSlotsUsed = 0;
  private readonly uniformGroups = new Map<string, GPUBindGroup>();
  /** Group-0 bind groups by pipeline and bound ranges; buffers are told apart by an id given at creation. */
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 0;

  private readonly sources: KernelSources;
  private readonly onCompile: ((ms: number, key: string) => void) | undefined;
  /**
   * Held so the garbage collector cannot free Dawn's instance or adapter under a live device (that crashes the
   * process in a futex call).
   */
  protected readonly keepAlive: object[];

  constructor(
    readonly device: GPUDevice,
    readonly adapter: AdapterReport,
    init: WebGpuInit,
  ) {
    this.sources = init.sources;
    this.onCompile = init.onCompile;
    this.keepAlive = init.keepAlive ?? [];
    device.lost.then((info) => {
      if (info.reason !== 'destroyed' || this.lostReason === null) this.lostReason = info.message || info.reason;
    });
    device.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
      this.firstError ??= ev.error.message;
    };
  }

  describe(): string {
    const a = this.adapter;
    return `webgpu: ${a.description} (${a.backend}${a.isSoftware ? ', software' : ''})`;
  }

  private check(): void {
    if (this.lostReason !== null) {
      throw new DeviceLostError(`GPU device lost: ${this.lostReason}`, 'the last checkpoint is intact; rerun with --resume');
    }
  }

  alloc(byteSize: number): DeviceBuffer {
    this.check();
    const cls = sizeClass(byteSize);
    if (cls > this.device.limits.maxStorageBufferBindingSize) {
      throw new OutOfMemoryError(
        `cannot allocate ${byteSize} bytes: larger than this adapter's storage binding limit of ${this.device.limits.maxStorageBufferBindingSize}`,
        'reduce the batch size or the model size',
      );
    }
    const free = this.pool.get(cls);
    let buffer = free?.pop();
    if (!buffer) {
      buffer = this.device.createBuffer({
        size: cls,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      this.bufferIds.set(buffer, this.nextBufferId++);
      this.counters.created++;
    }
    this.counters.liveBytes += cls;
    this.counters.peakBytes = Math.max(this.counters.peakBytes, this.counters.liveBytes);
    return new GpuBuffer(buffer, 0, byteSize, cls);
  }

  view(parent: DeviceBuffer, byteOffset: number, byteSize: number): DeviceBuffer {
    const p = parent as GpuBuffer;
    if (byteOffset % VIEW_ALIGN !== 0) throw new Error(`view offset ${byteOffset} is not a multiple of ${VIEW_ALIGN}`);
    if (byteOffset + byteSize > p.byteSize) throw new Error(`view [${byteOffset}, +${byteSize}) outside a ${p.byteSize}-byte buffer`);
    return new GpuBuffer(p.buffer, p.byteOffset + byteOffset, byteSize, -1);
  }

  free(buffer: DeviceBuffer): void {
    const b = buffer as GpuBuffer;
    if (b.sizeClass < 0) return;
    // Commands already encoded run before anything encoded later, so the buffer may be reused at once.
    const list = this.pool.get(b.sizeClass) ?? [];
    this.pool.set(b.sizeClass, list);
    list.push(b.buffer);
    this.counters.liveBytes -= b.sizeClass;
  }

  write(buffer: DeviceBuffer, data: ArrayBufferView): void {
    this.check();
    const b = buffer as GpuBuffer;
    if (data.byteLength > b.byteSize) throw new Error(`write of ${data.byteLength} bytes into a ${b.byteSize}-byte buffer`);
    // queue.writeBuffer lands before the next submit, so pending commands that still read this
    // (possibly recycled) buffer must be submitted first.
    if (this.encoded > 0) this.submit();
    this.device.queue.writeBuffer(b.buffer, b.byteOffset, data.buffer, data.byteOffset, data.byteLength);
  }

  private source(kernel: string): string {
    let src = this.sourceCache.get(kernel);
    if (src === undefined) {
      src = this.sources(kernel);
      this.sourceCache.set(kernel, src);
    }
    return src;
  }

  private runtimeNames(kernel: string): readonly string[] {
    let names = this.runtime.get(kernel);
    if (names === undefined) {
      names = runtimeConsts(this.source(kernel), KERNELS.get(kernel)!.consts);
      this.runtime.set(kernel, names);
    }
    return names;
  }

  private pipeline(call: KernelCall, key: string, runtime: readonly string[]): GPUComputePipeline {
    let p = this.pipelines.get(key);
    if (!p) {
      const fam = KERNELS.get(call.kernel)!;
      const prelude = constPrelude({ ...fam.defaults, ...call.consts }, { ...fam.fdefaults, ...call.fconsts }, runtime);
      const code = prelude + this.source(call.kernel);
      const t0 = performance.now();
      this.device.pushErrorScope('validation');
      const module = this.device.createShaderModule({ code, label: key });
      const preludeLines = prelude.split('\n').length - 1;
      module.getCompilationInfo().then((info) => {
        const err = info.messages.find((m) => m.type === 'error');
        // Report the line in kernels/<name>.wgsl, not in the prelude-prefixed source.
        if (err) this.compileError ??= `kernels/${call.kernel}.wgsl:${err.lineNum - preludeLines}: ${err.message} (${key})`;
      });
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: call.entry }, label: key });
      this.device.popErrorScope().then((err) => {
        if (err) this.firstError ??= `kernel ${key}: ${err.message}`;
      });
      this.pipelines.set(key, p);
      const ms = performance.now() - t0;
      this.compileMs += ms;
      this.onCompile?.(ms, key);
    }
    return p;
  }

  /** The group-1 bind group holding a call's run-time constants, made once per pipeline and values. */
  private dimsGroup(call: KernelCall, key: string, runtime: readonly string[], pipeline: GPUComputePipeline): GPUBindGroup {
    if (call.uniforms && call.uniforms.length > 0) {
      throw new Error(`kernel ${call.kernel}.${call.entry}: run-time constants and uniforms both need group 1; pass one of them`);
    }
    const values = runtimeValues(runtime, call.consts, KERNELS.get(call.kernel)!.defaults);
    const v = values.join(',');
    const groupKey = `${key}|${v}`;
    let group = this.dimGroups.get(groupKey);
    if (!group) {
      let buffer = this.dimBuffers.get(v);
      if (!buffer) {
        buffer = this.device.createBuffer({ size: values.byteLength, usage: GPUBufferUsage.UNIFORM, mappedAtCreation: true });
        new Uint32Array(buffer.getMappedRange()).set(values);
        buffer.unmap();
        this.dimBuffers.set(v, buffer);
      }
      group = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(1), entries: [{ binding: 0, resource: { buffer } }] });
      this.dimGroups.set(groupKey, group);
    }
    return group;
  }

  /** The group-0 bind group of a call's storage buffers, reused when the same pipeline binds the same ranges again. */
  private storageGroup(call: KernelCall, key: string, pipeline: GPUComputePipeline): GPUBindGroup {
    const entries: GPUBindGroupEntry[] = [];
    let groupKey = key;
    call.buffers.forEach((buf, binding) => {
      if (!buf) return;
      const b = buf as GpuBuffer;
      // Bindings must be a multiple of 4 bytes and non-empty.
      const size = Math.max(4, Math.ceil(b.byteSize / 4) * 4);
      entries.push({ binding, resource: { buffer: b.buffer, offset: b.byteOffset, size } });
      let id = this.bufferIds.get(b.buffer);
      if (id === undefined) {
        id = this.nextBufferId++;
        this.bufferIds.set(b.buffer, id);
      }
      groupKey += `|${binding}:${id}:${b.byteOffset}:${size}`;
    });
    let group = this.bindGroups.get(groupKey);
    if (!group) {
      group = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
      this.counters.bindGroupsCreated++;
      // Bounded: shapes that never repeat (a sweep of sizes in a benchmark) must not grow it without end.
      if (this.bindGroups.size >= BIND_GROUP_CACHE_LIMIT) this.bindGroups.clear();
      this.bindGroups.set(groupKey, group);
    }
    return group;
  }

  /** The group-1 bind group of a call's per-call uniforms: the next slot of the arena, staged until the submit. */
  private uniformGroup(uniforms: readonly number[], key: string, pipeline: GPUComputePipeline): GPUBindGroup {
    const size = Math.ceil((uniforms.length * 4) / 16) * 16;
    if (size > UNIFORM_SLOT_BYTES) throw new Error(`${key}: ${uniforms.length} uniforms do not fit a ${UNIFORM_SLOT_BYTES}-byte slot`);
    this.uniformArena ??= this.device.createBuffer({
      size: DISPATCHES_PER_SUBMIT * UNIFORM_SLOT_BYTES,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    const slot = this.uniformSlotsUsed++;
    this.uniformStage.set(uniforms, (slot * UNIFORM_SLOT_BYTES) / 4);
    const groupKey = `${key}|${slot}|${size}`;
    let group = this.uniformGroups.get(groupKey);
    if (!group) {
      group = this.device.createBindGroup({
        layout: pipeline.getBindGroupLayout(1),
        entries: [{ binding: 0, resource: { buffer: this.uniformArena, offset: slot * UNIFORM_SLOT_BYTES, size } }],
      });
      this.uniformGroups.set(groupKey, group);
    }
    return group;
  }

  run(call: KernelCall): void {
    this.check();
    const [x, y, z] = kernelEntry(call.kernel, call.entry).grid(call.consts);
    if (x === 0 || y === 0 || z === 0) return;
    const runtime = this.runtimeNames(call.kernel);
    const key = specKey(call.kernel, call.entry, call.consts, call.fconsts, runtime);
    const pipeline = this.pipeline(call, key, runtime);
    const bindGroup = this.storageGroup(call, key, pipeline);
    let uniformGroup: GPUBindGroup | null = null;
    if (runtime.length > 0) uniformGroup = this.dimsGroup(call, key, runtime, pipeline);
    else if (call.uniforms && call.uniforms.length > 0) uniformGroup = this.uniformGroup(call.uniforms, key, pipeline);
    if (!this.pass) {
      this.encoder = this.device.createCommandEncoder();
      this.pass = this.encoder.beginComputePass();
    }
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, bindGroup);
    if (uniformGroup) this.pass.setBindGroup(1, uniformGroup);
    this.pass.dispatchWorkgroups(x, y, z);
    this.encoded++;
    this.counters.dispatches++;
    if (this.encoded >= DISPATCHES_PER_SUBMIT) this.submit();
  }

  private submit(extra?: (enc: GPUCommandEncoder) => void): void {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    this.pass?.end();
    extra?.(this.encoder);
    if (this.uniformSlotsUsed > 0 && this.uniformArena) {
      this.device.queue.writeBuffer(this.uniformArena, 0, this.uniformStage, 0, (this.uniformSlotsUsed * UNIFORM_SLOT_BYTES) / 4);
      this.uniformSlotsUsed = 0;
    }
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.pass = null;
    this.encoded = 0;
  }

  private raiseErrors(): void {
    this.check();
    if (this.compileError !== null) {
      const msg = this.compileError;
      this.compileError = null;
      this.firstError = null;
      throw new GpuError(`WGSL compile error: ${msg}`);
    }
    if (this.firstError !== null) {
      const msg = this.firstError;
      this.firstError = null;
      if (/out of memory|OOM|allocation/i.test(msg)) throw new OutOfMemoryError(`GPU out of memory: ${msg}`, 'reduce the batch size');
      throw new GpuError(`WebGPU error: ${msg}`);
    }
  }

  async read(buffer: DeviceBuffer): Promise<ArrayBuffer> {
    this.check();
    const b = buffer as GpuBuffer;
    const size = Math.ceil(b.byteSize / 4) * 4;
    const stage = this.staging.findIndex((s) => s.size >= size && s.size <= size * 4);
    const staging =
      stage >= 0
        ? this.staging.splice(stage, 1)[0]
        : this.device.createBuffer({ size: sizeClass(size), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.submit((enc) => enc.copyBufferToBuffer(b.buffer, b.byteOffset, staging, 0, size));
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, size);
    } catch (e) {
      this.raiseErrors();
      throw new GpuError(`reading back from the GPU failed: ${(e as Error).message}`);
    }
    const out = staging.getMappedRange(0, size).slice(0, b.byteSize);
    staging.unmap();
    if (this.staging.length < 8) this.staging.push(staging);
    else staging.destroy();
    this.raiseErrors();
    return out;
  }

  async sync(): Promise<void> {
    this.check();
    if (this.encoded > 0 || this.encoder) this.submit();
    await this.device.queue.onSubmittedWorkDone();
    this.raiseErrors();
  }

  stats(): PoolStats {
    return { ...this.counters, pipelines: this.pipelines.size };
  }

  compileStats(): CompileStats {
    return { pipelines: this.pipelines.size, compileMs: this.compileMs, keys: [...this.pipelines.keys()] };
  }

  resetPeak(): void {
    this.counters.peakBytes = this.counters.liveBytes;
  }

  /** Ends the device so that the process can exit promptly; a test uses it to force a device loss. */
  destroy(): void {
    if (this.lostReason === null) this.lostReason = 'the device was destroyed';
    this.device.destroy();
    this.keepAlive.length = 0;
  }
}
