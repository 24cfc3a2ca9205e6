import { request } from 'node:http';
import type { Agent, IncomingHttpHeaders } from 'node:http';

/** A response read whole as text. */
export interface TextAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** Sends one plain-HTTP request without a body and reads the answer as UTF-8 text. */
export function requestText(options: {
  port: number; path: string; method?: string; host?: string; agent?: Agent | false;
  /** The local address to send from (a non-loopback source). */
  localAddress?: string;
  headers?: Record<string, string>;
}): Promise<TextAnswer> {
  return new Promise((resolve, reject) => {
    const { port, path, method = 'GET', host = '127.0.0.1', agent = false, localAddress, headers } = options;
    const req = request({ host, port, method, path, agent, localAddress, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}
