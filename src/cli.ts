#!/usr/bin/env node
/**
 * The executable: runs the command line and exits with its code. A safety timer (unref'd) makes
 * sure a finished command exits even if a library left a handle open.
 */
import { reportError, runCli } from './commands/dispatch.js';

runCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    setTimeout(() => process.exit(code), 2000).unref();
  },
  (error: unknown) => {
    process.exitCode = reportError(error);
    setTimeout(() => process.exit(process.exitCode), 2000).unref();
  },
);
