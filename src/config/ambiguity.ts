/**
 * The one rule for when two upstreams are ambiguous, shared by the config loader (which refuses
 * them at start-up) and the router (which must never meet them). Pure: no I/O, no convict.
 */

/**
 * The pairs of upstream URLs (by index, `i < j`) that one request could match: the same host name
 * (whatever the ports: a forward-proxy request may name no port) and company paths where one
 * prefixes the other on a segment boundary. The one ambiguity rule, used at start-up and by the
 * router. URLs that do not parse are skipped (they are reported on their own).
 */
export function overlappingUpstreams(urls: readonly string[]): [number, number][] {
  const parsed = urls.map((url) => {
    try {
      const u = new URL(url);
      return { hostname: u.hostname, companySlash: `${u.pathname.replace(/\/+$/, '')}/` };
    } catch {
      return undefined;
    }
  });
  const pairs: [number, number][] = [];
  for (let i = 0; i < parsed.length; i++) {
    for (let j = i + 1; j < parsed.length; j++) {
      const a = parsed[i];
      const b = parsed[j];
      if (a === undefined || b === undefined || a.hostname !== b.hostname) continue;
      if (a.companySlash.startsWith(b.companySlash) || b.companySlash.startsWith(a.companySlash)) pairs.push([i, j]);
    }
  }
  return pairs;
}
