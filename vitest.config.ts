import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One Dawn device per worker; lavapipe already uses every core, so run files one at a time.
    fileParallelism: false,
    // Generous: on a fresh machine lavapipe compiles every kernel specialisation cold (seconds each).
    testTimeout: 600_000,
    hookTimeout: 120_000,
    setupFiles: ['test/setup.ts'],
  },
});
