import type { AdminServerOptions } from '../../src/admin/server.js';
import { Metrics } from '../../src/lib/metrics.js';
import { makeLogSink } from './log-sink.js';
import { ManualClock } from './manual-clock.js';

/**
 * Options for an admin server under test: any free port on all interfaces, no upstreams, never
 * draining, always listening, a shutdown request ignored; `overrides` replace any of them.
 */
export function adminOptions(overrides: Partial<AdminServerOptions> = {}): AdminServerOptions {
  return {
    host: '0.0.0.0', port: 0, logger: makeLogSink('info').logger, metrics: new Metrics(), upstreams: [],
    readinessRequireToken: false, isDraining: () => false, isListening: () => true,
    onShutdownRequest: () => undefined, clock: new ManualClock(), ...overrides,
  };
}
