/**
 * Reading a JSON request body at the edge: 415 for another content type, 413 past the size limit,
 * 400 invalid_json for malformed JSON, 400 invalid_request with one detail per bad field.
 */
import type { Context } from 'hono';
import type { z } from 'zod';
import { InvalidRequestError, SbxError, type ErrorDetail } from '../../../core/src/errors.ts';

export async function readJsonBody<S extends z.ZodType>(c: Context, schema: S, limitBytes: number): Promise<z.infer<S>> {
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    throw new SbxError('unsupported_media_type', 'send the body as JSON with "Content-Type: application/json"');
  }
  const declared = Number(c.req.header('content-length') ?? '0');
  if (declared > limitBytes) throw tooLarge(limitBytes);
  const raw = await c.req.arrayBuffer();
  if (raw.byteLength > limitBytes) throw tooLarge(limitBytes);
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
  } catch (e) {
    throw new SbxError('invalid_json', `the body is not valid UTF-8 JSON: ${(e as Error).message}`);
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw validationError(parsed.error);
  return parsed.data;
}

function tooLarge(limit: number): SbxError {
  return new SbxError('payload_too_large', `the body must be at most ${limit} bytes`);
}

export function validationError(error: z.ZodError): InvalidRequestError {
  const details: ErrorDetail[] = error.issues.map((i) => {
    const path = i.path.map(String).join('.');
    if (i.code === 'unrecognized_keys') {
      const where = path ? `${path}.` : '';
      return { path: `${where}${i.keys.join(`, ${where}`)}`, message: 'is not a known field' };
    }
    return { path: path || '(body)', message: i.message };
  });
  const first = details[0]!;
  return new InvalidRequestError(`${first.path} ${first.message}`, details);
}
