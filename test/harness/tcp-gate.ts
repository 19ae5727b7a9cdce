/**
 * A TCP gate in front of a server on loopback: open, it passes each connection through; shut, it
 * hangs up on every connection, those already through included. What a client sees of a server that
 * went away, or of a network that cut it off, while the server itself stays up (the gate's own port
 * is the kernel's pick, held for the gate's life: nothing else can take it).
 */
import { createServer, connect, type Socket } from 'node:net';

export interface TcpGate {
  port: number;
  open(): void;
  shut(): void;
  close(): Promise<void>;
}

export async function startTcpGate(targetPort: number, opts: { open?: boolean } = {}): Promise<TcpGate> {
  let isOpen = opts.open ?? true;
  const through = new Set<Socket>();
  const server = createServer((client) => {
    if (!isOpen) return void client.destroy();
    const upstream = connect(targetPort, '127.0.0.1');
    for (const [s, other] of [[client, upstream], [upstream, client]] as const) {
      through.add(s);
      s.on('error', () => other.destroy());
      s.on('close', () => (through.delete(s), other.destroy()));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    port: (server.address() as { port: number }).port,
    open: () => void (isOpen = true),
    shut() {
      isOpen = false;
      for (const s of through) s.destroy();
    },
    close: () => new Promise<void>((done) => {
      for (const s of through) s.destroy();
      server.close(() => done());
    }),
  };
}
