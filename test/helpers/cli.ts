import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';

/** The result of one CLI run. */
export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Argument vector that runs the CLI from source (tsx), as `node dist/cli.js` would from a build. */
export const CLI = ['--import', 'tsx', 'src/cli.ts'];

/**
 * Runs `node <nodeArgs>` to completion, capturing its output. `env` replaces the environment
 * (default: inherited). Bounded by `timeoutMs`: a hung process fails instead of hanging the run.
 */
export function runNodeProcess(nodeArgs: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, nodeArgs, { env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`node ${nodeArgs.join(' ')} did not finish in ${options.timeoutMs} ms; stdout:\n${stdout}\nstderr:\n${stderr}`));
    }, options.timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs the CLI to completion with only `env` (plus PATH) in its environment; bounded by `timeoutMs`. */
export function runCliProcess(args: string[], env: Record<string, string>, timeoutMs = 30_000): Promise<CliResult> {
  return runNodeProcess([...CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeoutMs });
}

/** Starts a long-running CLI command; `output()` has everything printed so far. */
export function startCliProcess(args: string[], env: Record<string, string>): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [...CLI, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
  return { child, output: () => out };
}

/** Waits (bounded) until `predicate` holds, polling every 20 ms. */
export async function waitFor(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}
