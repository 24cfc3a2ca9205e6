/**
 * How a layer names the settings behind its options in messages. A layer describes problems in
 * its own terms ("the upstream timeout"); only the wiring knows whether an option came from an
 * environment variable or a config file (`upstreamTimeout (UPSTREAM_TIMEOUT)`,
 * `upstreams[1].tokenUrl (config file)`), so it passes names that point at the setting.
 */

/** Names one of a layer's settings (`K`) for a message. Pure. */
export type SettingNames<K extends string> = (setting: K) => string;

/** A layer's own words for its settings, for callers that do not know where an option came from. */
export function ownTerms<K extends string>(words: Readonly<Record<K, string>>): SettingNames<K> {
  return (setting) => words[setting];
}
