/**
 * What counts as this machine's loopback, in one place: plain http is allowed only towards it,
 * and `POST /shutdown` is accepted only from it.
 */
import { BlockList, isIP } from 'node:net';

const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

/**
 * Whether `address` (an IP address, e.g. a socket's `remoteAddress`) is a loopback address:
 * 127.0.0.0/8, `::1`, or an IPv4-mapped IPv6 form of 127.0.0.0/8 (`::ffff:127.0.0.1`). Anything
 * else, including `undefined` and non-IP strings, is not.
 */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const family = isIP(address);
  if (family === 4) return loopback.check(address, 'ipv4');
  if (family === 6) return loopback.check(address, 'ipv6');
  return false;
}

/** Whether `hostname` (a URL's hostname, IPv6 in brackets or not) names this machine's loopback. */
export function isLoopbackHost(hostname: string): boolean {
  const bare = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return bare === 'localhost' || bare.endsWith('.localhost') || isLoopbackAddress(bare);
}
