/**
 * Relaying: forward an admitted call to the upstream and stream its answer back, then record it.
 *
 *   body too slow              -> 408, connection closed, event (fairness.ts)
 *   body over maxBodyBytes     -> 413 (streamed past the limit), event
 *   upstream unreachable       -> 502 (504 on timeout), event; a bodiless idempotent call whose
 *                                 connection the upstream closed is first sent once more
 *   client gone                -> upstream call cancelled, event with status 499 (or the sent status)
 *   otherwise                  -> the upstream's answer, streamed, event billable per status
 *
 * Strict durability holds back the answer's last chunk until its event is durable (see server.ts).
 *
 * The upstream call is an undici dispatch with a handler (`UpstreamCall`), not `pool.request`:
 * request() builds per call a promise, an async resource, an abort listener and a Readable for
 * the answer, which this only passes on to `res`; the handler writes each chunk to `res` itself
 * and pauses the upstream while the client does not keep up. One 'close' listener on `res` does
 * the rest (frees the in-flight slot, records a finished answer, cancels the upstream if the
 * client left). Measured: bench/results/2026-12-05-gateway-cpu-cut.md.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errors as undiciErrors, type Dispatcher } from 'undici';
import type { GatewayRecorder } from '../observability/gateway-recorder.js';
import type { GatewayCounts } from './counts.js';
import type { Fairness } from './fairness.js';
import { BodyTooLargeError, CountingBody, answerHeaders, hasBody, upstreamHeaders, type Upstream } from './proxy.js';
import type { CallRecord } from './record.js';
import type { Responder } from './respond.js';
import type { AdmitLogger } from './admit.js';
import type { IdentityFilter } from './identity-headers.js';

export interface RelayContext {
  upstream: Upstream;
  fairness: Fairness;
  counts: GatewayCounts;
  respond: Responder;
  maxBodyBytes: number;
  /** Identity headers to drop (identity-headers.ts). */
  strip: IdentityFilter;
  logger: AdmitLogger;
  metrics?: GatewayRecorder;
}

/** `release` frees the call's in-flight slot once `res` closes (at once if it closed during admission). */
export function relay(ctx: RelayContext, req: IncomingMessage, res: ServerResponse, rec: CallRecord, release?: () => void): void {
  const counter = hasBody(req) ? new CountingBody(ctx.maxBodyBytes) : null;
  const up = new UpstreamCall(ctx, req, res, rec, counter, release);
  // A client that went away while admission awaited has closed `res` already, and 'close' does
  // not fire twice: free its slot and record the call as gone now (499), or the slot counts
  // against the key's in-flight limit until the process ends (test/unit/gateway.test.ts). Its
  // call is not forwarded: nobody is there to take the answer.
  if (res.closed) {
    req.resume();
    up.closed();
    return;
  }
  res.on('close', () => up.closed());
  if (counter) {
    // Not pipeline(): on an over-long body it would destroy `req` and with it the socket we
    // answer 413 on. Errors reach undici through `counter` and fail the dispatch (onError).
    req.pipe(counter);
    req.on('error', (e) => counter.destroy(e));
    counter.on('error', () => req.unpipe(counter));
    ctx.fairness.watchBody(counter, res);
  } else {
    req.resume();
  }
  const call = rec.call;
  const opts: Dispatcher.DispatchOptions = {
    path: ctx.upstream.path(call.path + call.query),
    method: call.method as Dispatcher.HttpMethod,
    headers: upstreamHeaders(req.headers, {
      identity: call.identity,
      presented: call.presented,
      api: call.api,
      eventId: call.eventId,
      clientIp: req.socket.remoteAddress ?? '',
      strip: ctx.strip,
    }),
    body: counter ?? undefined,
  };
  // A CONNECT has no answer to relay (request() refused it the same way, so it stays a 502).
  if (call.method === 'CONNECT') up.onError(new undiciErrors.InvalidArgumentError('invalid method'));
  else up.send(opts);
}

/** Methods a second try cannot change the outcome of (RFC 9110 9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
/**
 * Errors of a connection the upstream closed or reset under the call. On a kept-alive connection
 * this is the upstream's idle timeout crossing the call on the wire (undici marks the connection
 * stale only when the upstream names its timeout; many servers do not): a second try, on another
 * connection of the pool, gets the answer (docs/gateway.md, "Upstream connections").
 */
const CLOSED_UNDER_CALL = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']);

/**
 * One call's upstream side: an undici dispatch handler writing the answer to `res` as it comes.
 * It takes undici's raw callbacks (onConnect, onHeaders, onData, onComplete, onError), which its
 * HTTP/1 client calls directly: the controller-style ones (onResponseStart...) go through an
 * adapter that builds a controller per call and an object of the answer's headers, which this
 * would only turn back into a list (bench/results/2026-12-05-gateway-hot.md). undici's types
 * mark the raw callbacks deprecated; the gateway and relay-stream unit tests run through them,
 * so an undici that drops them fails there.
 */
class UpstreamCall implements Dispatcher.DispatchHandler {
  /** Cancels the upstream call once it started (undici's onConnect). */
  private abortUp: ((e?: Error) => void) | null = null;
  /** Resumes an upstream answer paused for a client that does not keep up. */
  private resumeUp: (() => void) | null = null;
  /** The client left before the upstream was reached: cancel the dispatch as it starts. */
  private cancelled = false;
  /** The upstream's answer status once its headers came (0 before). */
  private status = 0;
  /** Set once a batched answer streams: the status its event is recorded with when it finishes. */
  private finishStatus = 0;
  private done = false;
  private upstreamBroke = false;
  /** Strict: the chunk held back until the event is durable. */
  private held: Buffer | null = null;
  /** The answer's Content-Length (-1: none): its last chunk ends `res` at once. */
  private length = -1;
  /** `res.end()` was called with the last chunk. */
  private ended = false;
  private readonly tUp = performance.now();
  private opts: Dispatcher.DispatchOptions | null = null;
  /** Sent once more already (a call is retried at most once). */
  private retried = false;

  constructor(
    private readonly ctx: RelayContext,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly rec: CallRecord,
    private readonly counter: CountingBody | null,
    private readonly release: (() => void) | undefined,
  ) {}

  /** `res` closed: the answer finished, or the client went away first. */
  closed(): void {
    const { res, rec, counter } = this;
    this.release?.();
    if (res.writableFinished) {
      // 'close' follows 'finish' by a tick; a call recorded already (gateway answers, strict) is a no-op.
      if (this.finishStatus) {
        if (counter) rec.bytesIn = counter.bytes;
        rec.recordBatched(this.finishStatus);
      }
      return;
    }
    if (!this.upstreamBroke) this.ctx.counts.clientAborts++;
    if (!this.done) {
      if (this.abortUp) this.abortUp(new undiciErrors.RequestAbortedError());
      else this.cancelled = true;
    }
    if (counter) rec.bytesIn = counter.bytes;
    void rec.record(res.headersSent ? res.statusCode : 499);
  }

  send(opts: Dispatcher.DispatchOptions): void {
    this.opts = opts;
    this.ctx.upstream.pool.dispatch(opts, this);
  }

  /**
   * Whether a failed call goes out once more: nothing of an answer came, the client is still
   * there, and no body went (a body streams from the client once and cannot be sent again).
   */
  private retries(e: Error): boolean {
    if (this.retried || this.status || this.counter || !this.opts || this.res.destroyed) return false;
    if (!IDEMPOTENT.has(this.rec.call.method)) return false;
    return CLOSED_UNDER_CALL.has((e as NodeJS.ErrnoException).code ?? '');
  }

  onConnect(abort: (e?: Error) => void): void {
    this.abortUp = abort;
    if (this.cancelled) abort(new undiciErrors.RequestAbortedError());
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true; // 1xx: informational, not the answer
    this.resumeUp = resume;
    const { ctx, rec, res, counter } = this;
    const call = rec.call;
    ctx.counts.proxied++;
    ctx.metrics?.proxied(call.api, call.identity.customer, statusCode, call.t0, this.tUp, call.eventId);
    if (counter) rec.bytesIn = counter.bytes;
    this.status = statusCode;
    try {
      const headers = answerHeaders(rawHeaders, call.headers);
      this.length = contentLength(headers);
      res.writeHead(statusCode, headers);
    } catch (e) {
      // A bug, not the client's fault (as server.ts answers a failed handler).
      this.done = true;
      this.abortUp?.(e as Error);
      ctx.logger.error('gateway handler failed', { error: (e as Error).stack ?? String(e) });
      if (!res.headersSent) ctx.respond.json(this.req, res, 500, { error: 'internal_error', message: 'the gateway failed on this request' });
      else res.destroy();
      return false;
    }
    if (!rec.strict) this.finishStatus = statusCode;
    return true;
  }

  /** False pauses the upstream until the client drained what it was given. */
  onData(chunk: Buffer): boolean {
    // Past the Content-Length the client was given nothing more may go out (llhttp stops there
    // anyway; a write after end() would be an 'error' on `res`).
    if (this.ended) return true;
    const { res } = this;
    this.rec.bytesOut += chunk.length;
    if (this.rec.bytesOut === this.length && !this.rec.strict) {
      // The last chunk (llhttp stops at Content-Length; onComplete follows in the same parse):
      // end with it, one write of head and body now instead of a write, a corked tick and an end.
      this.ended = true;
      res.end(chunk);
      return true;
    }
    let out: Buffer | null = chunk;
    if (this.rec.strict) {
      // Strict relay: stream the answer but hold back its last chunk until the event is durable,
      // so the client never has a complete answer for an unrecorded call.
      out = this.held;
      this.held = chunk;
    }
    // A destroyed `res` refuses every write: the close handler cancels this call, never pause it.
    if (out && !res.write(out) && !res.destroyed) {
      res.once('drain', () => this.resumeUp?.());
      return false;
    }
    return true;
  }

  onComplete(): void {
    this.done = true;
    const { res, rec, counter, ctx } = this;
    if (!rec.strict) {
      if (!this.ended) res.end();
      return;
    }
    if (counter) rec.bytesIn = counter.bytes;
    const status = this.status;
    // If the event cannot be stored, the connection is cut: the client sees a broken answer, not a success.
    void rec.record(status).then((durable) => {
      if (res.destroyed) return;
      if (!durable) {
        ctx.counts.usageUnavailable++;
        ctx.logger.error('usage event not durable: answer cut off', { api: rec.call.api, status });
        res.destroy();
        return;
      }
      if (this.held) res.end(this.held);
      else res.end();
    });
  }

  onError(e: Error): void {
    const { ctx, req, res, rec, counter } = this;
    const c = ctx.counts;
    if (this.retries(e)) {
      this.retried = true;
      this.abortUp = null;
      c.upstreamRetries++;
      this.send(this.opts as Dispatcher.DispatchOptions);
      return;
    }
    this.done = true;
    const call = rec.call;
    if (counter) {
      // As request() did: the request body is not read any further.
      if (!counter.destroyed) counter.destroy(e);
      rec.bytesIn = counter.bytes;
    }
    if (this.status) {
      // The answer had begun: cut it off, so the client sees a broken answer, not a short one.
      if (res.writableFinished || res.destroyed) return;
      this.upstreamBroke = true;
      ctx.logger.warn('upstream response broken off', { error: e.message, api: call.api });
      res.destroy();
      return;
    }
    if (res.destroyed) return; // client gone: recorded by the close handler
    const rl = call.headers;
    const respond = ctx.respond;
    if (counter?.slowReason) {
      c.bodyTooSlow++;
      void respond.answer(req, res, rec, 408, { error: 'body_too_slow', message: `request body too slow: ${counter.slowReason}` }, rl, true);
      return;
    }
    if (counter?.tooLarge || e instanceof BodyTooLargeError) {
      c.tooLarge++;
      void respond.answer(req, res, rec, 413, { error: 'body_too_large', message: `request body is over the limit of ${ctx.maxBodyBytes} bytes` }, rl, true);
      return;
    }
    c.upstreamErrors++;
    const timeout = e instanceof undiciErrors.HeadersTimeoutError;
    ctx.logger.warn(timeout ? 'upstream timed out' : 'upstream unreachable', { error: e.message, api: call.api });
    void respond.answer(
      req,
      res,
      rec,
      timeout ? 504 : 502,
      { error: timeout ? 'upstream_timeout' : 'upstream_unreachable', message: timeout ? 'the API did not answer in time' : 'the API could not be reached' },
      rl,
    );
  }
}

/** The Content-Length of an answer header list, or -1. */
function contentLength(headers: readonly string[]): number {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === 'content-length') {
      const n = Number(headers[i + 1]);
      return Number.isSafeInteger(n) && n > 0 ? n : -1;
    }
  }
  return -1;
}
