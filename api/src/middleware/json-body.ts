/**
 * Reading a JSON request body at the edge: 415 for another content type, 413 past the size limit,
 * 400 invalid_json for malformed JSON, 400 invalid_request with one detail per bad field.
 *
 * The limit is counted as the body streams in (chunked bodies have no Content-Length to trust):
 * reading stops at the first byte past it and the 413 goes out at once. The rest of a huge body is
 * never buffered: @hono/node-server discards what is left unread, at most 64 MiB or 500 ms, then
 * closes the connection. (That lingering read is on purpose: closing at once, e.g. with
 * `Connection: close`, resets a connection the client is still writing to, and the client then
 * sees EPIPE instead of the 413.)
 */
import type { IncomingMessage } from 'node:http';
import type { HttpBindings } from '@hono/node-server';
import type { Context, MiddlewareHandler } from 'hono';
import type { z } from 'zod';
import { InvalidRequestError, SbxError, type ErrorDetail } from '../../../core/src/errors.ts';

export async function readJsonBody<S extends z.ZodType>(c: Context, schema: S, limitBytes: number): Promise<z.infer<S>> {
  const parsed = schema.safeParse((await readJson(c, limitBytes)).value);
  if (!parsed.success) throw validationError(parsed.error);
  return parsed.data;
}

/**
 * The route middleware of every route with a JSON body (api/src/routes, app.openapi): the body is
 * read here with the checks above (415, 413 while streaming, invalid_json), then handed to
 * zod-openapi's validator through Hono's body cache, which validates it against the schema the
 * route describes (its errors become invalid_request through the app's defaultHook), so the
 * handler reads it with c.req.valid('json').
 */
export function jsonBody(limitBytes: number): MiddlewareHandler {
  return async (c, next) => {
    const { text } = await readJson(c, limitBytes);
    (c.req.bodyCache as { text?: Promise<string> }).text = Promise.resolve(text);
    await next();
  };
}

async function readJson(c: Context, limitBytes: number): Promise<{ text: string; value: unknown }> {
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    throw new SbxError('unsupported_media_type', 'send the body as JSON with "Content-Type: application/json"');
  }
  const declared = Number(c.req.header('content-length') ?? '0');
  if (declared > limitBytes) throw tooLarge(limitBytes);
  const raw = await readAtMost(c, limitBytes);
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
    // A key spelled __proto__ (or escaped: \u005f…) is looked for only where it could be.
    const mayHideProto = text.includes('__proto__') || text.includes('\\u');
    return { text, value: mayHideProto ? JSON.parse(text, refuseProtoKeys) : JSON.parse(text) };
  } catch (e) {
    const why = e instanceof RangeError ? 'it is nested too deeply' : (e as Error).message; // the reviver walks it recursively
    throw new SbxError('invalid_json', `the body is not valid UTF-8 JSON: ${why}`);
  }
}

/**
 * JSON.parse keeps a `__proto__` key as an own property, but every object built from it (zod's
 * records: env, labels) drops it: such a variable or label would be lost without a word.
 */
function refuseProtoKeys(key: string, value: unknown): unknown {
  if (key === '__proto__') throw new Error('a key named __proto__ is not accepted');
  return value;
}

/** The body's bytes, read chunk by chunk; 413 as soon as more than `limit` arrived. */
async function readAtMost(c: Context, limit: number): Promise<Uint8Array> {
  const incoming = (c.env as Partial<HttpBindings> | undefined)?.incoming;
  if (incoming) return readIncomingAtMost(incoming, limit);
  const stream = c.req.raw.body;
  if (!stream) return new Uint8Array(0);
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      void reader.cancel().catch(() => {});
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

/**
 * The body straight from Node's request (served by @hono/node-server): `c.req.raw.body` would first
 * build the full fetch Request (undici) with a web stream over it, several times the CPU of the read
 * itself. Past the limit, reading stops and the stream is left paused: @hono/node-server discards
 * the rest as above.
 */
function readIncomingAtMost(incoming: IncomingMessage, limit: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const done = () => {
      incoming.off('data', onData);
      incoming.off('end', onEnd);
      incoming.off('error', onError);
      incoming.off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (total > limit) {
        done();
        incoming.pause();
        reject(tooLarge(limit));
      } else {
        chunks.push(chunk);
      }
    };
    const onEnd = () => {
      done();
      resolve(Buffer.concat(chunks, total));
    };
    const onError = (err: Error) => {
      done();
      reject(err);
    };
    const onClose = () => onError(Object.assign(new Error('the client closed the connection before the whole body arrived'), { code: 'ECONNRESET' }));
    if (incoming.readableEnded) return resolve(new Uint8Array(0));
    incoming.on('data', onData);
    incoming.on('end', onEnd);
    incoming.on('error', onError);
    incoming.on('close', onClose);
  });
}

function tooLarge(limit: number): SbxError {
  return new SbxError('payload_too_large', `the body must be at most ${limit} bytes`);
}

/** Unknown fields named in one detail, and details in one answer: a body of 50,000 unknown keys got a 777 KB answer. */
const KEYS_NAMED = 10;
const DETAILS_LISTED = 20;

export function validationError(error: z.ZodError): InvalidRequestError {
  const details: ErrorDetail[] = error.issues.slice(0, DETAILS_LISTED).map((i) => {
    const path = i.path.map(String).join('.');
    if (i.code === 'unrecognized_keys') {
      const where = path ? `${path}.` : '';
      const more = i.keys.length > KEYS_NAMED ? ` (and ${i.keys.length - KEYS_NAMED} more)` : '';
      return { path: `${where}${i.keys.slice(0, KEYS_NAMED).join(`, ${where}`)}${more}`, message: i.keys.length === 1 ? 'is not a known field' : 'are not known fields' };
    }
    return { path: path || '(body)', message: i.message };
  });
  if (error.issues.length > DETAILS_LISTED) details.push({ path: '(body)', message: `and ${error.issues.length - DETAILS_LISTED} more problems` });
  const first = details[0]!;
  return new InvalidRequestError(`${first.path} ${first.message}`, details);
}
