import assert from 'node:assert/strict';
import { ConfigError } from '../../src/lib/errors.js';

/** The problems of the `ConfigError` that `fn` throws; fails when it throws none (or something else). */
export function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error: unknown) {
    if (error instanceof ConfigError) return [...error.problems];
    throw error;
  }
  return assert.fail('expected a ConfigError');
}
