/**
 * Extra token request parameters: which names the sidecar sets itself, and the parser for the
 * form-query text an operator writes. Pure; shared by the config loader (which reports problems
 * at start-up) and the token endpoint client (which refuses reserved names).
 */

/**
 * Token request parameters the sidecar sets itself: extra parameters may not name them (`scope`
 * has its own option). Compared case-sensitively, as OAuth parameter names are.
 */
export const RESERVED_TOKEN_PARAMS: ReadonlySet<string> = new Set([
  'grant_type', 'client_assertion', 'client_assertion_type', 'client_id', 'client_secret', 'scope',
]);

/**
 * Parses extra token request parameters written as a form query (`audience=a&resource=b`, a
 * leading `?` allowed). Returns the pairs, or throws `RangeError` saying what is wrong: an empty
 * name or a name in `RESERVED_TOKEN_PARAMS`. Never puts a value in the message. Pure.
 */
export function parseExtraTokenParams(text: string): [string, string][] {
  const pairs = [...new URLSearchParams(text.trim().replace(/^\?/, ''))];
  for (const [name] of pairs) {
    if (name === '') throw new RangeError('an extra token request parameter has no name');
    if (RESERVED_TOKEN_PARAMS.has(name)) {
      throw new RangeError(`the extra token request parameter "${name}" is one the sidecar sets itself ` +
        `(${[...RESERVED_TOKEN_PARAMS].join(', ')} may not be given)`);
    }
  }
  return pairs;
}
