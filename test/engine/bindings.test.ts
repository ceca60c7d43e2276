// Every kernel family's declaration agrees with its WGSL: the named bindings sit at the numbers, with
// the access, that kernels/<family>.wgsl declares, and each entry binds exactly what its entry point
// uses; a launch with a wrong name, a missing binding or constant, or a too-small buffer fails before
// anything is dispatched, with an error naming the op. This file imports no op module: the backward
// sweep must work without one.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { bindCall, BindingError } from '../../src/backend/bind.ts';
import { FAMILIES } from '../../src/backend/kernels/index.ts';
import { dummyBuffers, launch, record, setBackend, Tensor } from '../../src/tensor/tensor.ts';
import { cpu } from '../helpers.ts';

interface WgslBinding {
  group: number;
  binding: number;
  name: string;
  access: 'read' | 'read_write' | 'uniform';
}

const stripComments = (s: string): string => s.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/[^\n]*/g, ' ');

/**
 * The binding declarations of a WGSL file, its entry points with the bindings and free constants that
 * their code reaches (through the functions and module-scope declarations it names), and every free
 * constant of the file: an upper-case name that nothing in the file declares (the prelude does).
 */
function analyse(src: string) {
  const code = stripComments(src);
  const bindings: WgslBinding[] = [];
  for (const m of code.matchAll(
    /@group\((\d+)\)\s*@binding\((\d+)\)\s*var<\s*(storage\s*,\s*(read_write|read)|uniform)\s*>\s*([A-Za-z_]\w*)/g,
  )) {
    bindings.push({ group: +m[1], binding: +m[2], name: m[5], access: m[3] === 'uniform' ? 'uniform' : (m[4] as 'read' | 'read_write') });
  }
  const items = new Map<string, string>();
  const entryPoints: string[] = [];
  let i = 0;
  while (i < code.length) {
    const rest = code.slice(i);
    const fn = /^\s*((?:@\w+(?:\([^)]*\))?\s*)*)fn\s+([A-Za-z_]\w*)/.exec(rest);
    if (fn) {
      let depth = 0;
      let j = code.indexOf('{', i + fn[0].length);
      for (; j < code.length; j++) {
        if (code[j] === '{') depth++;
        else if (code[j] === '}' && --depth === 0) break;
      }
      items.set(fn[2], code.slice(i, j + 1));
      if (/@compute/.test(fn[1])) entryPoints.push(fn[2]);
      i = j + 1;
      continue;
    }
    const decl =
      /^\s*(?:struct\s+([A-Za-z_]\w*)\s*\{[^}]*\}\s*;?|(?:@\w+(?:\([^)]*\))?\s*)*(?:const|var(?:<[^>]*>)?|override|alias)\s+([A-Za-z_]\w*)[^;]*;)/.exec(
        rest,
      );
    if (decl) {
      items.set(decl[1] ?? decl[2], decl[0]);
      i += decl[0].length;
      continue;
    }
    if (/^\s*$/.test(rest)) break;
    throw new Error(`unparsed WGSL near: ${rest.slice(0, 80)}`);
  }
  const declared = new Set<string>(items.keys());
  for (const m of code.matchAll(/\b(?:let|var(?:<[^>]*>)?|const)\s+([A-Za-z_]\w*)/g)) declared.add(m[1]);
  for (const m of code.matchAll(/[(,]\s*(?:@builtin\([^)]*\)\s*)?([A-Za-z_]\w*)\s*:/g)) declared.add(m[1]);
  const idents = (s: string): string[] => [...s.matchAll(/[A-Za-z_]\w*/g)].filter((m) => s[m.index - 1] !== '.').map((m) => m[0]);
  const isConst = (n: string): boolean => /^[A-Z][A-Z0-9_]*$/.test(n) && !declared.has(n);
  const byName = new Map(bindings.map((b) => [b.name, b]));
  const entries = new Map(
    entryPoints.map((e) => {
      const seen = new Set([e]);
      const todo = [e];
      const consts = new Set<string>();
      while (todo.length) {
        for (const id of idents(items.get(todo.pop()!)!)) {
          if (isConst(id)) consts.add(id);
          if (items.has(id) && !seen.has(id)) seen.add(id) && todo.push(id);
        }
      }
      const used = [...seen]
        .flatMap((n) => (byName.has(n) ? [byName.get(n)!] : []))
        .sort((a, b) => a.group - b.group || a.binding - b.binding);
      return [e, { bindings: used, consts }] as const;
    }),
  );
  return { bindings, entries, free: new Set(idents(code).filter(isConst)) };
}

describe('kernel declarations match kernels/<family>.wgsl', () => {
  for (const fam of Object.values(FAMILIES)) {
    it(fam.name, () => {
      const wgsl = analyse(readFileSync(new URL(`../../kernels/${fam.name}.wgsl`, import.meta.url), 'utf8'));
      // Slots: each names variables declared at its binding with its access; every declaration has a slot.
      for (const [name, slot] of Object.entries(fam.slots)) {
        for (const v of slot.wgsl) {
          const decl = wgsl.bindings.find((b) => b.name === v);
          expect(decl, `${fam.name} slot ${name}: no WGSL variable ${v}`).toBeDefined();
          expect({ slot: name, group: decl!.group, binding: decl!.binding, access: decl!.access }).toEqual({
            slot: name,
            group: 0,
            binding: slot.binding,
            access: slot.access,
          });
        }
      }
      const covered = new Set(Object.values(fam.slots).flatMap((s) => s.wgsl));
      for (const b of wgsl.bindings.filter((b) => b.group === 0))
        expect(covered.has(b.name), `${fam.name}: WGSL ${b.name} has no slot`).toBe(true);
      expect(Object.keys(fam.entries).sort()).toEqual([...wgsl.entries.keys()].sort());

      for (const [name, e] of Object.entries(fam.entries)) {
        const used = wgsl.entries.get(name)!;
        const op = `${fam.name}.${name}`;
        // Exactly the group-0 bindings the entry point reaches, in binding order, under the variable names of their slots.
        const group0 = used.bindings.filter((b) => b.group === 0);
        expect(
          e.slots.map((s) => [s.name, s.binding]),
          op,
        ).toEqual(group0.map((b) => [e.slots.find((s) => s.binding === b.binding)?.name, b.binding]));
        for (const b of group0)
          expect(fam.slots[e.slots.find((s) => s.binding === b.binding)!.name].wgsl, `${op}: ${b.name}`).toContain(b.name);
        expect(e.uniforms > 0, `${op}: uniforms`).toBe(used.bindings.some((b) => b.group === 1));
        // Every constant the entry's code reads is one it declares.
        for (const c of used.consts) expect(e.declared, `${op} reads ${c}`).toContain(c);
      }
      // The prelude gives every constant of the file a value: each is a family constant, integer or float, not both.
      for (const c of wgsl.free) expect(fam.consts.has(c) || fam.fconsts.has(c), `${fam.name}.wgsl names ${c}`).toBe(true);
      expect([...fam.consts].filter((c) => fam.fconsts.has(c))).toEqual([]);
    });
  }
});

describe('launch checks names, constants and sizes before dispatching', () => {
  setBackend(cpu);
  const x = Tensor.from([1, 2, 3, 4], [4]);
  const small = Tensor.from([1, 2, 3], [3]);
  const out = Tensor.empty([4]);
  const dispatches = () => cpu.stats().dispatches;

  const fails = (f: () => void, message: RegExp) => {
    const before = dispatches();
    expect(f).toThrow(BindingError);
    expect(f).toThrow(message);
    expect(dispatches()).toBe(before);
  };

  it('a well-formed launch runs', async () => {
    launch('elementwise', 'unary', { N: 4, OP: 0 }, { x, out }, { ALPHA: 2, BETA: 1 });
    expect([...(await out.data())]).toEqual([3, 5, 7, 9]);
  });

  it('an unknown binding name', () => {
    fails(
      // @ts-expect-error: the binding names of elementwise.unary are x and out
      () => launch('elementwise', 'unary', { N: 4, OP: 0 }, { x, outt: out }),
      /elementwise\.unary: unknown binding 'outt' \(it binds x, out\)/,
    );
  });

  it('a missing binding', () => {
    // @ts-expect-error: out is required
    fails(() => launch('elementwise', 'unary', { N: 4, OP: 0 }, { x }), /elementwise\.unary: missing binding 'out'/);
  });

  it('a buffer smaller than the constants say, with both sizes', () => {
    fails(
      () => launch('elementwise', 'unary', { N: 4, OP: 0 }, { x: small, out }),
      /elementwise\.unary: binding 'x' holds 3 elements, expected at least 4/,
    );
    const w = Tensor.empty([2, 3, 3, 3]);
    const y = Tensor.empty([1, 2, 2, 2]);
    const geometry = { B: 1, CI: 3, CO: 2, ID: 1, IH: 4, IW: 4, OD: 1, OH: 2, OW: 2, KD: 1, K: 3, SD: 1, S: 1, PD: 0, P: 0 };
    fails(
      () => launch('conv', 'forward', { ...geometry, HAS_BIAS: 0, PB: 2 }, { x, weight: w, out: y }),
      /conv\.forward: binding 'x' holds 4 elements, expected at least 48/,
    );
  });

  it('unknown and missing constants', () => {
    // @ts-expect-error: NN is no constant of the elementwise family
    fails(() => launch('elementwise', 'unary', { N: 4, OP: 0, NN: 1 }, { x, out }), /elementwise\.unary: unknown constant NN/);
    // @ts-expect-error: unary needs OP
    fails(() => launch('elementwise', 'unary', { N: 4 }, { x, out }), /elementwise\.unary: missing constant OP/);
    // @ts-expect-error: fill needs its VALUE
    fails(() => launch('elementwise', 'fill', { N: 4 }, { out }), /elementwise\.fill: missing float constant VALUE/);
    fails(
      // @ts-expect-error: SCALE is a float constant of attention, not of elementwise
      () => launch('elementwise', 'fill', { N: 4 }, { out }, { VALUE: 1, SCALE: 2 }),
      /elementwise\.fill: unknown float constant SCALE/,
    );
  });

  it('the uniform count', () => {
    const z = Tensor.empty([64]);
    const mask = Tensor.empty([1]);
    const call = () => launch('optimizer', 'adamw', { N4: 16 }, { g: z, mask, s: z, params: z, m: z, v: z }, undefined, [1, 2, 3]);
    fails(call, /optimizer\.adamw: takes 8 uniforms, got 3/);
  });

  it('an omitted optional binding gets the placeholder of its access', () => {
    const a = Tensor.empty([2, 3]);
    const b = Tensor.empty([3, 2]);
    const c = Tensor.empty([2, 2]);
    const consts = { BATCH: 1, M: 2, N: 2, K: 3, TA: 0, TB: 0, HAS_BIAS: 0, ACT: 0, SAVE_PRE: 0, A_BSTRIDE: 0, B_BSTRIDE: 0 };
    const call = bindCall('matmul', 'main', consts, { a: a.buffer, b: b.buffer, out: c.buffer }, undefined, undefined, dummyBuffers);
    expect(call.buffers).toEqual([a.buffer, b.buffer, dummyBuffers().read, c.buffer, dummyBuffers().write]);
    // Sizes are checked against what the constants switch on: a bias is only needed with HAS_BIAS.
    expect(() =>
      bindCall(
        'matmul',
        'main',
        { ...consts, HAS_BIAS: 1 },
        { a: a.buffer, b: b.buffer, bias: x.buffer, out: c.buffer },
        undefined,
        undefined,
        dummyBuffers,
      ),
    ).not.toThrow();
    expect(() =>
      bindCall(
        'matmul',
        'main',
        { ...consts, N: 5, HAS_BIAS: 1 },
        { a: a.buffer, b: b.buffer, bias: x.buffer, out: c.buffer },
        undefined,
        undefined,
        dummyBuffers,
      ),
    ).toThrow(/matmul\.main: binding 'b' holds 6 elements, expected at least 15/);
  });

  it('an unknown kernel or entry', () => {
    expect(() => bindCall('elementwise', 'nope', {}, {}, undefined, undefined, dummyBuffers)).toThrow(/unknown kernel elementwise\.nope/);
  });
});

describe('autograd without the op modules', () => {
  it('seeds, copies, adds and accumulates gradients through the tensor module alone', async () => {
    setBackend(cpu);
    const x = Tensor.from([2], [1]);
    x.requiresGrad = true;
    // y = x used twice: the tape copies the shared upstream gradient and adds the two contributions.
    const y = record(Tensor.from([4], [1]), 'twice', [x, x], (g) => [g, g]);
    y.backward();
    expect([...(await x.grad!.data())]).toEqual([2]);
    y.backward(); // into the existing gradient, in place
    expect([...(await x.grad!.data())]).toEqual([4]);
  });
});
