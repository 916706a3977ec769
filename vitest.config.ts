import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Each test file in its own process: the Temporal SDK loads a native addon, and time skipping is per environment.
    pool: 'forks',
    maxWorkers: 2,
    globalSetup: ['test/globalSetup.ts'],
    // Server start and workflow bundling take seconds; workflow tests skip days of simulated time.
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
