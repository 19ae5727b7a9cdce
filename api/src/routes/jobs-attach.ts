/**
 * GET /v1/jobs/{id}/attach — a WebSocket to a job, as `docker attach`: the job's output (and its
 * status and exit) as it comes, and, for interactive jobs, stdin bytes, EOF, window sizes and
 * signals to it. Frames (README "Attach"):
 *
 *   binary  [channel byte][bytes]   client → server: channel 0 = stdin
 *                                   server → client: channel 1 = stdout, 2 = stderr
 *   text    JSON control            client → server: {"type":"eof"} | {"type":"resize","rows","cols"}
 *                                                    | {"type":"signal","signal":"SIGINT"}
 *                                   server → client: {"type":"status","status"} | {"type":"exit",...exit event}
 *                                                    | {"type":"error","code","message"}
 *
 * Output is read from the job's event stream (as SSE): `?logs=true` replays it from the start
 * (what `sbx run -it` uses, so nothing printed before the socket opened is lost), else it starts
 * at the moment of attaching. Input goes through the job's stdin stream in Redis
 * (core/src/stdin-stream.ts) to whichever worker runs it; while that stream is full this socket is
 * not read (TCP backpressure to the client). Several clients may attach at once; each sees all
 * output. The server closes with 1000 after the exit frame.
 */
import type { ServerType } from '@hono/node-server';
import { createNodeWebSocket, type NodeWebSocket } from '@hono/node-ws';
import { z, type OpenAPIHono } from '@hono/zod-openapi';
import type { WSContext } from 'hono/ws';
import os from 'node:os';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { errorBody, InvalidRequestError, RateLimitedError } from '../../../core/src/errors.ts';
import { isFinished, type JobDocument } from '../../../core/src/job-spec.ts';
import { HEARTBEAT_MS, StdinClosedError, StdinWriter, type StdinFrame } from '../../../core/src/stdin-stream.ts';
import { NumberedWriter } from '../../../core/src/numbered-writer.ts';
import type { AppDeps, AppEnv } from '../deps.ts';
import { Doorbell } from '../job-events-hub.ts';
import { eventsPerPage, outputText } from '../../../core/src/job-store.ts';
import { checkWorkerAlive, loadJobForTenant } from '../job-access.ts';
import { ErrorBody, errors, flag, json, JobIdParams, streamsUsedUp } from '../openapi.ts';
import { websocketHandshakeProblem } from './websocket-handshake.ts';
import { storageHour, TenantStorageBudgets, type TenantStorageBudget } from '../../../core/src/tenant-storage-budget.ts';
import { AttachInput } from '../attach-input.ts';
import { rawResponse } from '../http-server.ts';
import { isAttachUpgrade } from '../upgrade-requests.ts';

export const CHANNEL = { stdin: 0, stdout: 1, stderr: 2 } as const;
/**
 * The largest message a client may send (a channel byte and 256 KiB of stdin, or a control
 * message): one over it closes the socket with 1009 as soon as its header announces its length,
 * before any of it is buffered. The `ws` default (100 MiB) let every attach socket hold that much of
 * the API's memory (P47).
 */
export const MAX_CLIENT_MESSAGE_BYTES = 256 * 1024 + 1;
/** Output queued in a client's socket past which the pump waits for it. */
const MAX_BUFFERED_OUTPUT = 1 << 20;
/** Queued in a client's socket past which a refused frame drops its connection (the pump's output, and 64 KiB of answers). */
const REFUSALS_UNREAD_BYTES = MAX_BUFFERED_OUTPUT + (64 << 10);
const LIVENESS_CHECK_MS = 5_000;
/** What one stdin frame's stream entry holds in Redis beside its bytes (its id, field names, bookkeeping). */
const STDIN_ENTRY_BYTES = 48;

/** What is used of the `ws` library's socket under Hono's WSContext. */
interface RawSocket { bufferedAmount: number; _socket?: Socket; terminate(): void }

const sockets = new WeakMap<object, NodeWebSocket>();

/** Set on an upgrade request's env once the attach handler has handed it to upgradeWebSocket. */
const UPGRADING = Symbol('sbx attach upgrading');

/** main.ts (or a test server): let the HTTP server hand WebSocket upgrades to the app. */
export function injectWebSockets(app: object, server: ServerType): void {
  const nodeWs = sockets.get(app);
  if (!nodeWs) return;
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node stops watching the socket once it is handed over: an error on it (the client reset the
    // connection during the handshake) would otherwise end the API process.
    socket.on('error', () => socket.destroy());
    if (!isAttachUpgrade(request)) {
      // A server made without ApiIncomingMessage (tests' servers) hands over every upgrade.
      socket.end(rawResponse({ status: 400, body: JSON.stringify(errorBody('invalid_request', 'only GET /v1/jobs/{id}/attach upgrades, to websocket; send this request without Upgrade')) }));
      return;
    }
    upgrade(app as OpenAPIHono<AppEnv>, nodeWs, request, socket, head).catch(() => socket.destroy());
  });
}

/**
 * What @hono/node-ws's injectWebSocket does, except for an upgrade the app refuses: that is
 * answered with the app's answer, its error body (api.md "Errors") and Retry-After included, where
 * node-ws sends the status alone with an empty body.
 */
async function upgrade(app: OpenAPIHono<AppEnv>, nodeWs: NodeWebSocket, request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
  const headers = new Headers();
  for (const [name, value] of Object.entries(request.headers)) if (value) headers.append(name, Array.isArray(value) ? value[0]! : value);
  const env: Record<PropertyKey, unknown> = { incoming: request, outgoing: undefined };
  const response = await app.request(new URL(request.url ?? '/', 'http://localhost'), { headers }, env);
  if (env[UPGRADING] === true && response.ok) {
    nodeWs.wss.handleUpgrade(request, socket, head, (ws: unknown) => nodeWs.wss.emit('connection', ws, request));
    return;
  }
  const passed: Record<string, string> = {};
  for (const name of ['Content-Type', 'Retry-After']) {
    const value = response.headers.get(name);
    if (value) passed[name] = value;
  }
  socket.end(rawResponse({ status: response.status, body: await response.text() }, passed));
}

/** Described beside the handler (a WebSocket upgrade is no JSON route, so registered by hand). */
function describeAttach(app: OpenAPIHono<AppEnv>): void {
  app.openAPIRegistry.registerPath({
    method: 'get', path: '/v1/jobs/{id}/attach', tags: ['jobs'],
    summary: 'Attach to a job over a WebSocket (docker attach): output, status and exit out; stdin, EOF, window sizes and signals in',
    description: 'Binary frames carry [channel byte][bytes] (0 stdin from the client; 1 stdout, 2 stderr from the server); text frames carry JSON control messages. Besides the Authorization header, the key may come as the subprotocol `sbx.bearer.<key>` or `?token=` (browsers cannot set headers on WebSockets).',
    request: {
      params: JobIdParams,
      query: z.object({ logs: flag('replay the output from the start'), token: z.string().optional().openapi({ description: 'the API key, for clients that cannot send headers' }) }),
    },
    responses: {
      101: { description: 'Switching Protocols: the WebSocket' },
      400: json(ErrorBody, 'Not a WebSocket upgrade'),
      401: errors[401], 404: errors[404], 429: streamsUsedUp, 503: errors[503],
    },
  });
}

export function registerJobsAttach(app: OpenAPIHono<AppEnv>, deps: AppDeps): void {
  describeAttach(app);
  const nodeWs = createNodeWebSocket({ app });
  // @hono/node-ws makes its server with ws's defaults; ws reads maxPayload from its options per upgrade.
  nodeWs.wss.options.maxPayload = MAX_CLIENT_MESSAGE_BYTES;
  sockets.set(app, nodeWs);
  const writer = new StdinWriter(deps.redis, deps.keys);
  const budgets = new TenantStorageBudgets(deps.redis, deps.keys);
  app.get('/v1/jobs/:id/attach', async (c, next) => {
    // The job first: another tenant's job is a 404 whatever the request looks like.
    const job = await loadJobForTenant(deps, c.req.param('id'), c.get('tenant'));
    if (c.req.header('upgrade')?.toLowerCase() !== 'websocket') {
      throw new InvalidRequestError('this endpoint is a WebSocket: connect with Upgrade: websocket (see README "Attach")', [{ path: 'upgrade', message: 'must be websocket' }]);
    }
    const logs = c.req.query('logs') === 'true';
    const from = logs ? '0' : await lastEventId(deps, job.doc.id);
    // A handshake `ws` would refuse never reaches upgradeWebSocket (websocket-handshake.ts). Then one
    // of the tenant's stream places (429 before the upgrade), held until the connection closes.
    const socket = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming?.socket;
    const problem = websocketHandshakeProblem((name) => c.req.header(name), socket);
    if (problem) throw new InvalidRequestError(`cannot upgrade to a WebSocket: ${problem}`, [{ path: 'headers', message: problem }]);
    const release = deps.streams.take(c.get('tenant'), c.get('quota'));
    // Stdin passes through Redis: charged to the tenant's storage budget as output is (P49).
    const perHour = c.get('quota')?.storedBytesPerHour;
    const budget = perHour ? budgets.for(c.get('tenant'), perHour) : null;
    socket!.once('close', release); // upgraded or not, the place goes with the connection
    (c.env as Record<symbol, unknown>)[UPGRADING] = true;
    const handler = nodeWs.upgradeWebSocket(() => {
      let session: AttachSession | null = null;
      return {
        onOpen: (_e, ws) => { session = new AttachSession(deps, writer, budget, job.doc, ws, from); session.start(); },
        onMessage: (e, ws) => { session?.receive(e.data, ws); },
        onClose: () => session?.close(),
        onError: () => session?.close(),
      };
    });
    return handler(c, next);
  });
}

/**
 * Where an attach without `?logs=true` starts: after the job's last event, or before it when that is
 * its exit (the job ended before the socket opened, perhaps after its document was read): the pump
 * then sends the exit frame, not a close without one.
 */
async function lastEventId(deps: AppDeps, id: string): Promise<string> {
  const last = await deps.redis.xrevrange(deps.keys.jobEvents(id), '+', '-', 'COUNT', 2);
  const [newest, before] = last;
  if (!newest) return '0';
  const isExit = newest[1].some((v, i) => i % 2 === 0 && v === 'type' && newest[1][i + 1] === 'exit');
  return isExit ? (before?.[0] ?? '0') : newest[0];
}

const CONTROL_FORMS = 'text frames are JSON objects: {"type":"eof"|"resize"|"signal",...}';

/** A text frame as the JSON object it must be (any other JSON, or none, refused saying so). */
function controlMessage(text: string): { type?: unknown; rows?: unknown; cols?: unknown; signal?: unknown } {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    throw new Error(CONTROL_FORMS);
  }
  if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new Error(CONTROL_FORMS);
  return m;
}

class AttachSession {
  private readonly abort = new AbortController();
  private readonly bell = new Doorbell();
  private stdinClosed = false;
  private beat: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | null = null;
  /** Numbers the client's input frames: one sent again after a Redis reconnect reaches the job once. */
  private readonly sender = new NumberedWriter();
  /** The client's input, in order, to the job's stdin stream (its callbacks run once frames come). */
  private readonly input = new AttachInput(
    async (frame) => {
      if (this.stdinClosed) return;
      if (frame.type === 'data' && this.budget) await this.charge(frame.data.length);
      await this.writer.append(this.doc.id, frame, this.abort.signal, this.sender);
    },
    (e) => {
      if (e instanceof StdinClosedError) this.stdinClosed = true; // the job ended: the pump sends its exit
      else if (e instanceof RateLimitedError) this.refuse(e.code, e.message);
      else if (!this.abort.signal.aborted) this.refuse('dependency_unavailable', 'input could not be passed on (Redis); attach again');
    },
    (on) => this.pause(on),
  );

  constructor(
    private readonly deps: AppDeps,
    private readonly writer: StdinWriter,
    /** The tenant's storage budget (quota storedBytesPerHour), charged for the stdin it sends; null: none. */
    private readonly budget: TenantStorageBudget | null,
    private readonly doc: JobDocument,
    private readonly ws: WSContext,
    private after: string,
  ) {}

  /**
   * `bytes` of stdin from the tenant's budget for the hour, as a stream entry stores them; throws
   * RateLimitedError (that input is dropped, the client told) when the budget is used up.
   */
  private async charge(bytes: number): Promise<void> {
    const need = bytes + STDIN_ENTRY_BYTES;
    const { granted } = await this.budget!.charge(need);
    if (granted < need) {
      throw new RateLimitedError(`tenant ${this.budget!.tenant}'s jobs have stored ${this.budget!.bytesPerHour} bytes (job records, output and stdin) this hour, its quota (storedBytesPerHour): this input was not passed on`, storageHour().msLeft / 1000);
    }
  }

  start(): void {
    const interactive = this.doc.interactive;
    if (interactive && !isFinished(this.doc.status)) {
      const every = Math.max(250, Math.min(HEARTBEAT_MS, Math.floor((this.doc.limits.idleTimeoutMs ?? HEARTBEAT_MS * 3) / 3)));
      // One beat at a time, none while the stream is full: the frames filling it say enough (before,
      // each beat retried until there was room: Redis calls grew without bound while a job did not read).
      let beating = false;
      const beat = () => {
        if (beating) return;
        beating = true;
        void this.writer.appendUnlessFull(this.doc.id, { type: 'attached' }).catch(() => {}).finally(() => (beating = false));
      };
      beat();
      this.beat = setInterval(beat, every);
    }
    void this.pump().catch((err: unknown) => {
      this.deps.logger.warn({ err, jobId: this.doc.id }, 'attach output failed');
      this.sendJson({ type: 'error', code: 'internal', message: 'reading the job\'s output failed; attach again' });
      this.ws.close(1011, 'internal');
    });
  }

  close(): void {
    if (this.abort.signal.aborted) return;
    this.abort.abort();
    clearInterval(this.beat);
    this.unwatch?.();
  }

  /** One client frame: queued behind the earlier ones, so they reach Redis in order (attach-input.ts). */
  receive(data: unknown, _ws: WSContext): void {
    let frame: StdinFrame;
    try {
      frame = this.parse(data);
    } catch (e) {
      this.refuse('invalid_request', (e as Error).message);
      return;
    }
    this.input.push(frame);
  }

  /**
   * Tells the client why its frame was refused. A client that sends refused frames faster than it
   * reads the answers is cut off once they would hold more than REFUSALS_UNREAD_BYTES here: its
   * connection is dropped (a close frame would wait behind what it does not read, and hold it).
   * Before, 2M one-byte frames held 750 MiB of the API, slowing every tenant's requests.
   */
  private refuse(code: string, message: string): void {
    const raw = this.ws.raw as RawSocket | undefined;
    if (raw && raw.bufferedAmount > REFUSALS_UNREAD_BYTES) {
      this.deps.logger.info({ jobId: this.doc.id }, 'attach socket dropped: refused frames sent faster than their answers were read');
      raw.terminate();
      this.close();
      return;
    }
    this.sendJson({ type: 'error', code, message });
  }

  private parse(data: unknown): StdinFrame {
    const interactive = this.doc.interactive;
    if (typeof data === 'string') {
      const m = controlMessage(data);
      if (m.type === 'resize') {
        const ok = (n: unknown) => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65535;
        if (!ok(m.rows) || !ok(m.cols)) throw new Error('resize needs integer rows and cols in 1..65535');
        if (!interactive?.tty) throw new Error('this job has no tty (submit it with "tty": true)');
        return { type: 'resize', rows: m.rows as number, cols: m.cols as number };
      }
      if (m.type === 'signal') {
        if (typeof m.signal !== 'string' || !(m.signal in os.constants.signals) || m.signal === 'SIGKILL' || m.signal === 'SIGSTOP') throw new Error('signal must be a signal name like SIGINT (not SIGKILL/SIGSTOP: DELETE the job instead)');
        if (!interactive) throw new Error('signals go to interactive jobs only (openStdin or tty); DELETE cancels any job');
        return { type: 'signal', signal: m.signal };
      }
      if (m.type === 'eof') {
        if (!interactive?.openStdin) throw new Error('this job\'s stdin is not open (submit it with "openStdin": true)');
        return { type: 'eof' };
      }
      throw new Error(CONTROL_FORMS);
    }
    const buf = Buffer.from(data as ArrayBuffer);
    if (buf.length < 1 || buf[0] !== CHANNEL.stdin) throw new Error('binary frames are [0][stdin bytes]');
    if (!interactive?.openStdin) throw new Error('this job\'s stdin is not open (submit it with "openStdin": true)');
    return { type: 'data', data: buf.subarray(1) };
  }

  private pause(on: boolean): void {
    const sock = (this.ws.raw as RawSocket | undefined)?._socket;
    if (on) sock?.pause();
    else sock?.resume();
  }

  private sendJson(v: unknown): void {
    if (this.ws.readyState === 1) this.ws.send(JSON.stringify(v));
  }

  /** The job's events from `after` on, as frames, until its exit (then close 1000). */
  private async pump(): Promise<void> {
    const id = this.doc.id;
    const channel = this.deps.keys.jobNotify(id);
    const unwatch = await this.deps.hub.watch(channel, this.bell.ring);
    // A socket closed while the subscription was on its way (a reset just after the 101): close()
    // found nothing to end (before: the job's channel stayed subscribed until the API restarted).
    if (this.abort.signal.aborted) return void unwatch();
    this.unwatch = unwatch;
    let ended = isFinished(this.doc.status);
    let lastLiveness = Date.now();
    const raw = this.ws.raw as RawSocket | undefined;
    let pageEvents = eventsPerPage([]); // a socket that is not read holds one page (P48)
    while (!this.abort.signal.aborted) {
      const from = this.after;
      const events = await this.deps.hub.sharedRead(channel, from, () => this.deps.store.readEvents(id, from, pageEvents));
      if (events.length > 0) pageEvents = eventsPerPage(events);
      for (const e of events) {
        this.after = e.id;
        if (this.ws.readyState !== 1) return;
        if (e.type === 'stdout' || e.type === 'stderr') {
          this.ws.send(Buffer.concat([Buffer.from([CHANNEL[e.type]]), Buffer.from(outputText(e), 'utf8')]));
          while (raw && raw.bufferedAmount > MAX_BUFFERED_OUTPUT && !this.abort.signal.aborted) await new Promise((r) => setTimeout(r, 10));
        } else if (e.type === 'status') {
          this.sendJson({ type: 'status', ...(JSON.parse(e.data) as object) });
        } else if (e.type === 'exit') {
          this.sendJson({ type: 'exit', ...(JSON.parse(e.data) as object) });
          this.ws.close(1000, 'exited');
          this.close();
          return;
        }
      }
      if (events.length > 0) continue;
      if (ended) {
        this.ws.close(1000, 'ended');
        return;
      }
      if (Date.now() - lastLiveness > LIVENESS_CHECK_MS) {
        lastLiveness = Date.now();
        const doc = await this.deps.store.getDoc(id);
        if (!doc) return void this.ws.close(1000, 'expired');
        if (isFinished(doc.status)) { ended = true; continue; }
        await checkWorkerAlive(this.deps, doc);
      }
      await this.bell.wait(LIVENESS_CHECK_MS, this.abort.signal);
    }
  }
}
