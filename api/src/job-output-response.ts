/**
 * A job's document with its output (`POST ?wait=true`, `GET /v1/jobs/{id}?output=true`: of a
 * running job, what it has written so far), as one JSON body. A short output (core/src/job-store.ts
 * shortOutput) is answered from one read; a longer one (up to limits.outputBytes per stream, 16 MiB
 * by default at most) is written page by page as the client takes it, so a request holds one page
 * of it, never the whole (P48). Assembled whole, 50 clients reading one 16 MiB output without
 * taking the answer held 2 GB of the API.
 */
import type { Context } from 'hono';
import { eventsPerPage, outputText, SHORT_OUTPUT, shortOutput, type JobStore } from '../../core/src/job-store.ts';
import type { JobDocument } from '../../core/src/job-spec.ts';
import type { AppDeps, AppEnv } from './deps.ts';

/** Output bytes per piece written to the socket. */
const PIECE_BYTES = 64 * 1024;

export async function jobWithOutputResponse(c: Context<AppEnv>, deps: AppDeps, doc: JobDocument): Promise<Response> {
  if (doc.output) return c.json(doc, 200);
  const first = await deps.store.readEvents(doc.id, '0', SHORT_OUTPUT.events);
  const output = shortOutput(first);
  if (output) return c.json({ ...doc, output }, 200);
  // Long: streamed from the start again, page by page; the first read is not held meanwhile.
  return c.body(asByteStream(documentWithOutput(deps.store, doc)), 200, { 'content-type': 'application/json' });
}

/** The document's JSON with `output` last, its two strings written as the stream is read. */
async function* documentWithOutput(store: JobStore, doc: JobDocument): AsyncGenerator<string> {
  const { output: _none, ...rest } = doc;
  yield `${JSON.stringify(rest).slice(0, -1)},"output":{"stdout":"`;
  yield* escapedOutput(store, doc.id, 'stdout');
  yield '","stderr":"';
  yield* escapedOutput(store, doc.id, 'stderr');
  yield '"}}';
}

/** One stream's output as JSON string content (escaped, without quotes), about PIECE_BYTES at a time, a page at a time. */
async function* escapedOutput(store: JobStore, id: string, type: 'stdout' | 'stderr'): AsyncGenerator<string> {
  let asked = eventsPerPage([]);
  let page = await store.readEvents(id, '0', asked);
  for (;;) {
    let piece = '';
    for (const e of page) {
      if (e.type !== type) continue;
      piece += JSON.stringify(outputText(e)).slice(1, -1); // JSON string content, without the quotes
      if (piece.length >= PIECE_BYTES) {
        yield piece;
        piece = '';
      }
    }
    if (piece) yield piece;
    if (page.length < asked) return; // the end of the job's stream (as of this read, for a running job)
    const after = page[page.length - 1]!.id;
    asked = eventsPerPage(page);
    page = []; // not held while the next page is read
    page = await store.readEvents(id, after, asked);
  }
}

/** Pulled only as the client takes what came before (the server reads on once the socket drains). */
function asByteStream(pieces: AsyncGenerator<string>): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const { value, done } = await pieces.next();
        if (done) controller.close();
        else controller.enqueue(encoder.encode(value));
      },
      async cancel() {
        await pieces.return(undefined);
      },
    },
    { highWaterMark: 0 },
  );
}
