#!/usr/bin/env node
// The mapfuzz command: loads the TypeScript CLI through tsx and exits with its status.
import { register } from 'tsx/esm/api';

register();
// A reader that went away (`mapfuzz show … | head`): stop quietly, as coreutils do on SIGPIPE.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
