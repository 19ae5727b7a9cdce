/**
 * A real webhook receiver for tests: a node http server on a free loopback port that records every
 * request (raw body, headers) and every TCP connection, and answers each path from a script of
 * statuses (the last one repeats), e.g. { '/flaky': [503, 200] }.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedWebhook {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface WebhookReceiver {
  port: number;
  url(path: string): string;
  received: ReceivedWebhook[];
  connections(): number;
  on(path: string): ReceivedWebhook[];
  stop(): Promise<void>;
}

export async function startWebhookReceiver(script: Record<string, number[]> = {}): Promise<WebhookReceiver> {
  const received: ReceivedWebhook[] = [];
  const served = new Map<string, number>();
  let connections = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '/';
      received.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const statuses = script[path] ?? [200];
      const n = served.get(path) ?? 0;
      served.set(path, n + 1);
      res.writeHead(statuses[Math.min(n, statuses.length - 1)]!, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: (path) => `http://127.0.0.1:${port}${path}`,
    received,
    connections: () => connections,
    on: (path) => received.filter((r) => r.path === path),
    stop: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
