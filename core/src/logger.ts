import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs on stdout; one logger per process, children per component. `destination`: elsewhere (tests). */
export function createLogger(name: string, level = 'info', destination?: DestinationStream): Logger {
  const options = { name, level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime, serializers: { err: serializeError } };
  return destination ? pino(options, destination) : pino(options);
}

/**
 * pino's error serializer, without the arguments of a failed Redis command: ioredis attaches them to
 * the errors Redis answers with (`command: { name, args }`), and they are what was being written: a
 * job's record with its env values, stdin and sealed registryAuth, its output. The command's name and
 * its number of arguments are kept, in the error and in any error serialized inside it.
 */
export function serializeError(err: unknown): unknown {
  const serialized = pino.stdSerializers.err(err as Error);
  dropCommandArgs(serialized, Object.getPrototypeOf(serialized), 0);
  return serialized;
}

function dropCommandArgs(serialized: unknown, errorProto: object | null, depth: number): void {
  if (depth > 8 || serialized === null || typeof serialized !== 'object') return;
  const fields = serialized as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    const value = fields[key];
    if (key === 'command' && value !== null && typeof value === 'object' && 'args' in value) {
      const { name, args } = value as { name?: unknown; args?: unknown };
      fields[key] = { name, args: Array.isArray(args) ? `(${args.length} not logged)` : '(not logged)' };
    } else if (Array.isArray(value) && key === 'aggregateErrors') {
      for (const e of value) dropCommandArgs(e, errorProto, depth + 1);
    } else if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === errorProto) {
      dropCommandArgs(value, errorProto, depth + 1); // an error inside it, serialized by pino (a fresh object)
    }
  }
}
