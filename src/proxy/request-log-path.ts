/**
 * The path written to the per-request log line: never a query (it may carry anything), never a
 * fragment, and never the user credentials an absolute-form request target may carry.
 */
import type { Exchange } from './exchange.js';

/**
 * The path without its query, for logs: the normalised upstream path once the request was
 * routed, else the request target cut at `?` / `#`, with any `user:pass@` of an absolute-form
 * target removed. Pure and synchronous.
 */
export function pathForLog(exchange: Exchange): string {
  if (exchange.target !== undefined) {
    const q = exchange.path.indexOf('?');
    return q === -1 ? exchange.path : exchange.path.slice(0, q);
  }
  const url = exchange.req.url ?? '';
  const q = url.indexOf('?');
  // An absolute-form target may carry user credentials: keep only scheme, host and path.
  const hash = url.indexOf('#');
  const end = q === -1 ? (hash === -1 ? url.length : hash) : hash === -1 ? q : Math.min(q, hash);
  return url.slice(0, end).replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1');
}
