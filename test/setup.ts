// Dawn's Vulkan loader wants a runtime dir; CI shells may not have one.
import { mkdirSync } from 'node:fs';
import { beforeEach, expect } from 'vitest';

// Every test must assert: one that reaches its end without an expect fails instead of passing vacuously (a
// test that cannot run, e.g. without a GPU outside CI, marks itself skipped; see test/helpers.ts requireGpu).
beforeEach(() => {
  expect.hasAssertions();
});

if (!process.env.XDG_RUNTIME_DIR) {
  process.env.XDG_RUNTIME_DIR = '/tmp/mf-xdg';
  mkdirSync(process.env.XDG_RUNTIME_DIR, { recursive: true, mode: 0o700 });
}
