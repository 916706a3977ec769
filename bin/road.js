#!/usr/bin/env node
// The `road` command: runs the TypeScript CLI through tsx's loader (no build step).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../client/cli.ts');
process.exit(await main(process.argv));
