// Server-Sent Events, parsed from a whole response body (k6 has no streaming SSE client: the stream of
// a job ends when the job does, so a plain GET returns every event once the job is over).

/** The events of `body`: [{event, id, data}] in order; comment lines (keep-alives) are skipped. */
export function parseSse(body) {
  const events = [];
  for (const block of String(body || '').split(/\r?\n\r?\n/)) {
    let event = 'message';
    let id = null;
    const data = [];
    let any = false;
    for (const line of block.split(/\r?\n/)) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') event = value;
      else if (field === 'id') id = value;
      else if (field === 'data') data.push(value);
      else continue;
      any = true;
    }
    if (any) events.push({ event, id, data: data.join('\n') });
  }
  return events;
}

/** Redis stream ids `<ms>-<seq>`: a < b. */
function idBefore(a, b) {
  const [am, as] = a.split('-').map(Number);
  const [bm, bs] = b.split('-').map(Number);
  return am < bm || (am === bm && as < bs);
}

/**
 * What a reader of a job's stream got: its stdout, the final status, and the problems found (empty when
 * the stream is whole: ids increasing, nothing after `exit`, `exit` last, every data JSON).
 */
export function readJobStream(body) {
  const events = parseSse(body);
  const problems = [];
  let stdout = '';
  let exit = null;
  let last = null;
  for (const e of events) {
    if (exit) problems.push(`event ${e.event} after exit`);
    if (e.id !== null) {
      if (last !== null && !idBefore(last, e.id)) problems.push(`id ${e.id} not after ${last}`);
      last = e.id;
    }
    let data;
    try {
      data = JSON.parse(e.data);
    } catch (_) {
      problems.push(`${e.event} data is not JSON: ${e.data.slice(0, 80)}`);
      continue;
    }
    if (e.event === 'stdout') stdout += data.data;
    if (e.event === 'exit') exit = data;
  }
  if (!exit) problems.push(`no exit event among ${events.length}`);
  return { events: events.length, stdout, status: exit ? exit.status : null, problems };
}
