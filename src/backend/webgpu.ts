// The WebGPU runtime: acquires the adapter and device through Dawn, caches one compute pipeline per
// kernel specialisation, pools storage buffers by size class, and batches dispatches into one command
// encoder. Reading back to the CPU is the only point where it waits.
import { readFileSync } from 'node:fs';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { create, globals } from 'webgpu';
import { DeviceLostError, GpuError, OutOfMemoryError } from '../errors.ts';
import type { Backend, DeviceBuffer, KernelCall, PoolStats } from './backend.ts';
import { VIEW_ALIGN } from './backend.ts';
import { constPrelude, runtimeConsts, runtimeValues, specKey } from './kernel.ts';
import { kernelEntry, KERNELS } from './kernels/index.ts';

const KERNEL_DIR = fileURLToPath(new URL('../../kernels/', import.meta.url));

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

export interface WebGpuOptions {
  /** Dawn backend: 'vulkan', 'metal', 'd3d12', ... (default: Dawn's choice). */
  backend?: string;
  /** Substring of the adapter description to pick (Dawn's `adapter=` option). */
  adapter?: string;
}

/** Dispatches encoded before an automatic submit, so the device works while the CPU encodes. */
const DISPATCHES_PER_SUBMIT = 256;

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

let globalsInstalled = false;
function dawn(options: WebGpuOptions): GPU {
  if (!globalsInstalled) {
    Object.assign(globalThis, globals);
    globalsInstalled = true;
  }
  // Dawn's Vulkan path wants a runtime dir; plain shells and CI may lack one.
  if (!process.env.XDG_RUNTIME_DIR) {
    process.env.XDG_RUNTIME_DIR = '/tmp/mf-xdg';
    mkdirSync(process.env.XDG_RUNTIME_DIR, { recursive: true, mode: 0o700 });
  }
  const flags: string[] = [];
  if (options.backend) flags.push(`backend=${options.backend}`);
  if (options.adapter) flags.push(`adapter=${options.adapter}`);
  return create(flags);
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

function reportAdapter(adapter: GPUAdapter, requestedBackend?: string): AdapterReport {
  const info = adapter.info;
  const limits: Record<string, number> = {};
  for (const k of KEY_LIMITS) limits[k] = adapter.limits[k];
  const description = info.description || `${info.vendor} ${info.device}`.trim();
  const isSoftware = /llvmpipe|lavapipe|swiftshader|software/i.test(`${description} ${info.device} ${info.architecture}`);
  // Dawn's adapter info has no backend field; it uses the platform's native API unless told otherwise.
  const native: Record<string, string> = { linux: 'vulkan', darwin: 'metal', win32: 'd3d12' };
  const backendType = requestedBackend ?? native[process.platform] ?? 'unknown';
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

/** Every adapter Dawn offers, for `mf devices`. */
export async function listAdapters(options: WebGpuOptions = {}): Promise<AdapterReport[]> {
  const gpu = dawn(options);
  const out: AdapterReport[] = [];
  for (const powerPreference of ['high-performance', 'low-power'] as const) {
    const a = await gpu.requestAdapter({ powerPreference });
    if (!a) continue;
    const r = reportAdapter(a, options.backend);
    if (!out.some((o) => o.description === r.description && o.backend === r.backend)) out.push(r);
  }
  return out;
}

export class WebGpuBackend implements Backend {
  readonly name = 'webgpu' as const;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly sources = new Map<string, string>();
  private readonly pool = new Map<number, GPUBuffer[]>();
  private readonly staging: GPUBuffer[] = [];
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private encoded = 0;
  private afterSubmit: GPUBuffer[] = [];
  private lostReason: string | null = null;
  private firstError: string | null = null;
  private compileError: string | null = null;
  private counters: PoolStats = { liveBytes: 0, peakBytes: 0, created: 0, dispatches: 0 };
  private compileMs = 0;
  /** Per family, the constants its WGSL takes at run time (kernel.ts `runtimeConsts`). */
  private readonly runtime = new Map<string, readonly string[]>();
  /** Immutable `MF_DIMS` uniform buffers by their values, and group-1 bind groups by pipeline and values. */
  private readonly dimBuffers = new Map<string, GPUBuffer>();
  private readonly dimGroups = new Map<string, GPUBindGroup>();

  private constructor(
    readonly device: GPUDevice,
    readonly adapter: AdapterReport,
    // Held so the garbage collector cannot free Dawn's instance or adapter under a live device
    // (that crashes the process in a futex call).
    private readonly keepAlive: (GPU | GPUAdapter)[],
  ) {
    device.lost.then((info) => {
      if (info.reason !== 'destroyed' || this.lostReason === null) this.lostReason = info.message || info.reason;
    });
    device.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
      this.firstError ??= ev.error.message;
    };
  }

  static async create(options: WebGpuOptions = {}): Promise<WebGpuBackend | null> {
    const gpu = dawn(options);
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) return null;
    const report = reportAdapter(adapter, options.backend);
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
    const device = await adapter.requestDevice({ requiredLimits, requiredFeatures: [] });
    return new WebGpuBackend(device, report, [gpu, adapter]);
  }

  /**
   * Dawn's instance and adapter behind this device, for code that brings its own WebGPU kernels on the
   * same device (`mf bench --compare tfjs`); null once destroyed.
   */
  get dawn(): { gpu: GPU; adapter: GPUAdapter } | null {
    const gpu = this.keepAlive.find((h): h is GPU => 'requestAdapter' in h);
    const adapter = this.keepAlive.find((h): h is GPUAdapter => 'requestDevice' in h);
    return gpu && adapter ? { gpu, adapter } : null;
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
    let src = this.sources.get(kernel);
    if (src === undefined) {
      src = readFileSync(`${KERNEL_DIR}${kernel}.wgsl`, 'utf8');
      this.sources.set(kernel, src);
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
      if (process.env.MF_TRACE_COMPILE) process.stderr.write(`compile ${ms.toFixed(0)}ms ${key}\n`);
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

  run(call: KernelCall): void {
    this.check();
    const [x, y, z] = kernelEntry(call.kernel, call.entry).grid(call.consts);
    if (x === 0 || y === 0 || z === 0) return;
    const runtime = this.runtimeNames(call.kernel);
    const key = specKey(call.kernel, call.entry, call.consts, call.fconsts, runtime);
    const pipeline = this.pipeline(call, key, runtime);
    const entries: GPUBindGroupEntry[] = [];
    call.buffers.forEach((buf, binding) => {
      if (!buf) return;
      const b = buf as GpuBuffer;
      // Bindings must be a multiple of 4 bytes and non-empty.
      entries.push({ binding, resource: { buffer: b.buffer, offset: b.byteOffset, size: Math.max(4, Math.ceil(b.byteSize / 4) * 4) } });
    });
    const bindGroup = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    let uniformGroup: GPUBindGroup | null = null;
    if (runtime.length > 0) uniformGroup = this.dimsGroup(call, key, runtime, pipeline);
    else if (call.uniforms && call.uniforms.length > 0) {
      const size = Math.ceil((call.uniforms.length * 4) / 16) * 16;
      const ub = this.device.createBuffer({ size, usage: GPUBufferUsage.UNIFORM, mappedAtCreation: true });
      new Float32Array(ub.getMappedRange()).set(call.uniforms);
      ub.unmap();
      this.afterSubmit.push(ub);
      uniformGroup = this.device.createBindGroup({
        layout: pipeline.getBindGroupLayout(1),
        entries: [{ binding: 0, resource: { buffer: ub } }],
      });
    }
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
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.pass = null;
    this.encoded = 0;
    if (this.afterSubmit.length) {
      const done = this.afterSubmit;
      this.afterSubmit = [];
      this.device.queue.onSubmittedWorkDone().then(() => done.forEach((b) => b.destroy()));
    }
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
    return { ...this.counters };
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
