/**
 * A job's document with its output (`POST ?wait=true`, `GET /v1/jobs/{id}?output=true`: of a
 * running job, what it has written so far), as one JSON body. A short output (core/src/job-store.ts
 * shortOutput) is answered from one read; a longer one (up to limits.outputBytes per stream, 16 MiB
 * by default at most) is written page by page as the client takes it, so a request holds one page
 * of it, never the whole (P48). Assembled whole, 50 clients reading one 16 MiB output without
 * taking the answer held 2 GB of the API. The stream is read once when stderr is short (it is held,
 * up to about a page, while stdout is written), and the output's JSON escapes are the stored ones.
 */
import type { Context } from 'hono';
import { EVENT_PAGE, escapedOutputText, eventsPerPage, SHORT_OUTPUT, shortOutput, type JobEvent, type JobStore } from '../../core/src/job-store.ts';
import type { JobDocument } from '../../core/src/job-spec.ts';
import type { AppDeps, AppEnv } from './deps.ts';
import { JSON_CONTENT_TYPE } from './http-server.ts';

/** Output bytes per piece written to the socket. */
const PIECE_BYTES = 64 * 1024;
/** stderr held while stdout is written, at most (about one page of events): past it, stderr is read again. */
const HELD_STDERR_CHARS = EVENT_PAGE.bytes;

export async function jobWithOutputResponse(c: Context<AppEnv>, deps: AppDeps, doc: JobDocument): Promise<Response> {
  if (doc.output) return c.json(doc, 200);
  const first = await deps.store.readEvents(doc.id, '0', SHORT_OUTPUT.events);
  const output = shortOutput(first);
  if (output) return c.json({ ...doc, output }, 200);
  // Long: streamed from the start again, page by page; the first read is not held meanwhile.
  return c.body(asByteStream(documentWithOutput(deps.store, doc)), 200, { 'content-type': JSON_CONTENT_TYPE });
}

/** The document's JSON with `output` last, its two strings written as the stream is read. */
async function* documentWithOutput(store: JobStore, doc: JobDocument): AsyncGenerator<string> {
  const { output: _none, ...rest } = doc;
  yield `${JSON.stringify(rest).slice(0, -1)},"output":{"stdout":"`;
  const stderr = new HeldOutput('stderr', HELD_STDERR_CHARS);
  yield* escapedOutput(store, doc.id, 'stdout', '0', stderr);
  yield '","stderr":"';
  // Read again only when stderr was too long to hold, and from its first event on.
  if (stderr.readAgainAfter !== null) yield* escapedOutput(store, doc.id, 'stderr', stderr.readAgainAfter);
  else if (stderr.chars > 0) yield stderr.take();
  yield '"}}';
}

/**
 * One stream's output as JSON string content (escaped, without quotes), about PIECE_BYTES at a time,
 * a page at a time, from the events after `after` ('0': all). The other stream's events read on the
 * way are offered to `other`.
 */
async function* escapedOutput(store: JobStore, id: string, type: OutputStream, after: string, other?: HeldOutput): AsyncGenerator<string> {
  let asked = eventsPerPage([]);
  let before = after;
  let page = await store.readEvents(id, after, asked);
  for (;;) {
    let piece = '';
    for (const e of page) {
      if (e.type === type) {
        piece += escapedOutputText(e);
        if (piece.length >= PIECE_BYTES) {
          yield piece;
          piece = '';
        }
      } else if (other && e.type === other.type) {
        other.offer(e, before);
      }
      before = e.id;
    }
    if (piece) yield piece;
    if (page.length < asked) return; // the end of the job's stream (as of this read, for a running job)
    asked = eventsPerPage(page);
    page = []; // not held while the next page is read
    page = await store.readEvents(id, before, asked);
  }
}

type OutputStream = 'stdout' | 'stderr';

/**
 * Up to `maxChars` of one stream's escaped output, gathered while the other stream is written, so
 * that a long stdout with a short stderr (or none) is read from Redis once. Past the bound it lets
 * go of what it holds and keeps where to read again from: the event before the stream's first.
 */
class HeldOutput {
  private pieces: string[] = [];
  /** Characters offered so far (held unless readAgainAfter is set). */
  chars = 0;
  /** null while everything offered is held; else the event id to read the stream again after. */
  readAgainAfter: string | null = null;
  private first: string | null = null;

  constructor(
    readonly type: OutputStream,
    private readonly maxChars: number,
  ) {}

  /** An event of this stream; `before` is the id of the event read just before it ('0': none). */
  offer(e: JobEvent, before: string): void {
    this.first ??= before;
    if (this.readAgainAfter !== null) return;
    const text = escapedOutputText(e);
    this.chars += text.length;
    if (this.chars > this.maxChars) {
      this.readAgainAfter = this.first;
      this.pieces = [];
      return;
    }
    this.pieces.push(text);
  }

  take(): string {
    const all = this.pieces.join('');
    this.pieces = [];
    return all;
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
