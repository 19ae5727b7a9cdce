/**
 * A Server-Sent Events parser (the WHATWG event-stream format) over any async iterable of bytes.
 * An event is yielded only once its terminating blank line has arrived: a connection cut in the
 * middle of an event yields nothing of it, so a reader that resumes after the last yielded id
 * neither loses nor repeats an event.
 */
export interface ServerSentEvent {
  event: string;
  /** This event's own `id:` field, or null when it had none. */
  id: string | null;
  /** The stream's last event id as the WHATWG spec keeps it (the latest `id:` seen, carried over). */
  lastEventId: string | null;
  data: string;
}

export async function* parseServerSentEvents(body: AsyncIterable<Uint8Array | string>): AsyncGenerator<ServerSentEvent> {
  const decoder = new TextDecoder();
  let buffer = '';
  let event = 'message';
  let id: string | null = null;
  let lastEventId: string | null = null;
  let data: string[] = [];
  /** The events the buffer's complete lines end; at the stream's end a last CR ends its line too. */
  function* drain(atEnd: boolean): Generator<ServerSentEvent> {
    let nl: number;
    while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
      if (!atEnd && nl === buffer.length - 1 && buffer[nl] === '\r') break; // a CRLF cut between chunks: its LF is still to come
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(buffer.startsWith('\r\n', nl) ? nl + 2 : nl + 1);
      if (line === '') {
        if (id !== null) lastEventId = id;
        if (data.length) yield { event, id, lastEventId, data: data.join('\n') };
        event = 'message';
        id = null;
        data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id' && !value.includes('\0')) id = value;
    }
  }
  for await (const chunk of body) {
    buffer += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    yield* drain(false);
  }
  yield* drain(true);
}
