// Dawn's Vulkan loader wants a runtime dir; CI shells may not have one.
import { mkdirSync } from 'node:fs';

if (!process.env.XDG_RUNTIME_DIR) {
  process.env.XDG_RUNTIME_DIR = '/tmp/mf-xdg';
  mkdirSync(process.env.XDG_RUNTIME_DIR, { recursive: true, mode: 0o700 });
}
