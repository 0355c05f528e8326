#!/usr/bin/env node
// The mapfuzz command: loads the TypeScript CLI through tsx and exits with its status.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
