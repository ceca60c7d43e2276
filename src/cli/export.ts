// `mf export <run | model.safetensors> --format onnx|torch [--task KEY] --out FILE`: a trained Medformer for other
// frameworks. ONNX: the inference graph with the weights as initializers (src/export/onnx.ts), one input per input
// kind and logits and probabilities per head. torch: one head's state dict in the PyTorch peer's names and layouts
// (src/export/torch.ts). Both read the model on the host as mf eval does (readModel); no device starts. A
// brainfuse-interp run (or its model.safetensors) exports its slice interpolator as ONNX (src/export/onnx-brainfuse.ts).
import fs from 'node:fs';
import path from 'node:path';
import { INTERP_WEIGHTS, readInterpolator } from '../brain/interpolator.ts';
import { ConfigError } from '../errors.ts';
import { medformerOnnx } from '../export/onnx.ts';
import { interpolatorOnnx } from '../export/onnx-brainfuse.ts';
import { encodeModel, type ModelMessage, OPSET_VERSION } from '../export/onnx-proto.ts';
import { torchHead, torchStateDict } from '../export/torch.ts';
import { readSafetensors, writeSafetensors } from '../train/safetensors.ts';
import { writeFileAtomic } from '../util/files.ts';
import { readModel, selectHeads } from './load-model.ts';

export interface ExportFlags {
  format: string;
  task?: string;
  out: string;
  json?: boolean;
}

const PACKAGE_JSON = path.resolve(import.meta.dirname, '../../package.json');

function producerVersion(): string {
  try {
    const v: unknown = JSON.parse(fs.readFileSync(PACKAGE_JSON, 'utf8')).version;
    return typeof v === 'string' ? v : '';
  } catch {
    return '';
  }
}

export async function exportCommand(target: string, flags: ExportFlags): Promise<void> {
  if (flags.format !== 'onnx' && flags.format !== 'torch') {
    throw new ConfigError(`--format ${flags.format}: not a format mf export writes`, 'use onnx or torch');
  }
  const outDir = path.dirname(path.resolve(flags.out));
  if (!fs.existsSync(outDir) || !fs.statSync(outDir).isDirectory()) {
    throw new ConfigError(`--out ${flags.out}: the folder ${outDir} does not exist`, 'create it first or pick another path');
  }
  if (isInterpolator(target)) return exportInterpolator(target, flags);
  const source = readModel(target);
  const d = source.description;
  const heads = selectHeads(d, flags.task, '--task');

  if (flags.format === 'onnx') {
    const { model, inputs, outputs } = medformerOnnx(source, heads, producerVersion());
    writeOnnx(
      flags,
      model,
      inputs.map((k) => ({ name: k.name, shape: ['batch', k.channels, ...Array<number>(k.dim).fill(k.size)] })),
      outputs.map((o) => ({ name: o.name, task: o.task, shape: ['batch', o.width] })),
      '(inputs normalised as mf predict does: bytes v -> v * 2 / 255 - 1)',
    );
    return;
  }

  const head = torchHead(heads, d.heads);
  const t = torchStateDict(source, head);
  writeSafetensors(flags.out, t.tensors, t.metadata);
  if (flags.json) {
    console.log(
      JSON.stringify(
        { format: 'torch', out: flags.out, task: head.key, module: t.module, mapping: t.mapping, dropped: t.dropped },
        null,
        2,
      ),
    );
  } else {
    const transposed = t.mapping.filter((m) => m.transform === 'transpose').length;
    console.log(
      `wrote ${flags.out}: PyTorch state dict of head ${head.key}, ${t.mapping.length} tensors (${transposed} Linear weights transposed to [out, in]` +
        `${t.dropped.length ? `; ${t.dropped.length} parameters of other heads or input paths left out` : ''}); ` +
        'loads into MedformerSmall(**module) of bench/medformer_small_torch.py (module and mapping in its __metadata__; --json prints them)',
    );
  }
}

/** A brainfuse-interp run folder (its model.safetensors) or that file: metadata format "brainfuse-interp". */
function isInterpolator(target: string): boolean {
  const file = fs.existsSync(target) && fs.statSync(target).isDirectory() ? path.join(target, INTERP_WEIGHTS) : target;
  return fs.existsSync(file) && fs.statSync(file).isFile() && readSafetensors(file).metadata.get('format') === 'brainfuse-interp';
}

function exportInterpolator(target: string, flags: ExportFlags): void {
  if (flags.format !== 'onnx') {
    throw new ConfigError(
      `--format ${flags.format}: ${target} is a BrainFuse interpolator; mf export writes it as onnx`,
      `its ${INTERP_WEIGHTS} already holds PyTorch's conv layouts ([Cout, Cin, k, k]) under the engine's names`,
    );
  }
  if (flags.task !== undefined) throw new ConfigError(`--task ${flags.task}: ${target} is a BrainFuse interpolator; it has no task heads`);
  const { model, multiple } = interpolatorOnnx(readInterpolator(target), producerVersion());
  writeOnnx(
    flags,
    model,
    [{ name: 'slices', shape: ['batch', 2, 'height', 'width'] }],
    [{ name: 'middle', shape: ['batch', 1, 'height', 'width'] }],
    `(BrainFuse interpolator; height and width multiples of ${multiple})`,
  );
}

interface ValueSummary {
  name: string;
  task?: string;
  shape: (string | number)[];
}

/** Writes the model and says what it holds: one line, or with --json the summary object. */
function writeOnnx(flags: ExportFlags, model: ModelMessage, inputs: ValueSummary[], outputs: ValueSummary[], note: string): void {
  const bytes = encodeModel(model);
  writeFileAtomic(flags.out, bytes);
  const nodes = model.graph.node.length;
  if (flags.json) {
    const summary = {
      format: 'onnx',
      opset: OPSET_VERSION,
      out: flags.out,
      bytes: bytes.length,
      nodes,
      initializers: model.graph.initializer.length,
    };
    console.log(JSON.stringify({ ...summary, inputs, outputs }, null, 2));
    return;
  }
  const list = (vs: ValueSummary[]) => vs.map((v) => `${v.name} [${v.shape.join(', ')}]`).join(', ');
  console.log(
    `wrote ${flags.out}: ONNX opset ${OPSET_VERSION}, ${nodes} nodes, ${(bytes.length / 1e6).toFixed(2)} MB; ` +
      `inputs ${list(inputs)}; outputs ${list(outputs)} ${note}`,
  );
}
