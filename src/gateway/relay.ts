/**
 * Relaying: forward an admitted call to the upstream and stream its answer back, then record it.
 *
 *   body too slow              -> 408, connection closed, event (fairness.ts)
 *   body over maxBodyBytes     -> 413 (streamed past the limit), event
 *   upstream unreachable       -> 502 (504 on timeout), event
 *   client gone                -> upstream call cancelled, event with status 499 (or the sent status)
 *   otherwise                  -> the upstream's answer, streamed, event billable per status
 *
 * Strict durability holds back the answer's last chunk until its event is durable (see server.ts).
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { errors as undiciErrors, type Dispatcher } from 'undici';
import type { GatewayRecorder } from '../observability/gateway-recorder.js';
import type { GatewayCounts } from './counts.js';
import type { Fairness } from './fairness.js';
import { BodyTooLargeError, CountingBody, clientHeaders, hasBody, upstreamHeaders, type Upstream } from './proxy.js';
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

/**
 * `release` (the call's in-flight slot) is freed by the one 'close' handler this function adds to
 * `res`: per call, every listener costs (node:events was 5.4 µs of meter's call against 3.2 µs
 * of the unmetered proxy's; bench/results/2026-12-05-gateway-cpu-cut.md), so 'close' also does
 * the work of 'finish' and the answer is streamed by hand instead of by pipe().
 */
export async function relay(ctx: RelayContext, req: IncomingMessage, res: ServerResponse, rec: CallRecord, release?: () => void): Promise<void> {
  const { counts: c, respond } = ctx;
  const call = rec.call;
  const rl = call.headers;
  // undici takes an EventEmitter as abort signal: much cheaper per call than an AbortController.
  const abort = new EventEmitter();
  let answerBody: Readable | null = null;
  let upstreamBroke = false;
  /** Set once a batched answer streams: the status its event is recorded with when it finishes. */
  let finishStatus = 0;
  const counter = hasBody(req) ? new CountingBody(ctx.maxBodyBytes) : null;
  // A client that went away while admission awaited has closed `res` already, and 'close' does
  // not fire twice: free its slot now, or it counts against the key's in-flight limit until the
  // process ends (test/unit/gateway.test.ts).
  if (res.closed) release?.();
  res.on('close', () => {
    release?.();
    if (res.writableFinished) {
      // 'close' follows 'finish' by a tick; a call recorded already (gateway answers, strict) is a no-op.
      if (finishStatus) {
        if (counter) rec.bytesIn = counter.bytes;
        void rec.record(finishStatus);
      }
      return;
    }
    if (!upstreamBroke) c.clientAborts++;
    abort.emit('abort');
    answerBody?.destroy();
    if (counter) rec.bytesIn = counter.bytes;
    void rec.record(res.headersSent ? res.statusCode : 499);
  });
  if (counter) {
    // Not pipeline(): on an over-long body it would destroy `req` and with it the socket we
    // answer 413 on. Errors reach undici through `counter` and reject the request below.
    req.pipe(counter);
    req.on('error', (e) => counter.destroy(e));
    counter.on('error', () => req.unpipe(counter));
    ctx.fairness.watchBody(counter, res);
  } else {
    req.resume();
  }

  let reply;
  const tUp = performance.now();
  try {
    reply = await ctx.upstream.pool.request({
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
      signal: abort,
    });
  } catch (e) {
    if (counter) rec.bytesIn = counter.bytes;
    if (res.destroyed) return; // client gone: recorded by the close handler
    if (counter?.slowReason) {
      c.bodyTooSlow++;
      return respond.answer(req, res, rec, 408, { error: 'body_too_slow', message: `request body too slow: ${counter.slowReason}` }, rl, true);
    }
    if (counter?.tooLarge || e instanceof BodyTooLargeError) {
      c.tooLarge++;
      return respond.answer(req, res, rec, 413, { error: 'body_too_large', message: `request body is over the limit of ${ctx.maxBodyBytes} bytes` }, rl, true);
    }
    c.upstreamErrors++;
    const timeout = e instanceof undiciErrors.HeadersTimeoutError;
    ctx.logger.warn(timeout ? 'upstream timed out' : 'upstream unreachable', { error: (e as Error).message, api: call.api });
    const status = timeout ? 504 : 502;
    return respond.answer(
      req,
      res,
      rec,
      status,
      { error: timeout ? 'upstream_timeout' : 'upstream_unreachable', message: timeout ? 'the API did not answer in time' : 'the API could not be reached' },
      rl,
    );
  }
  c.proxied++;
  ctx.metrics?.proxied(call.api, call.identity.customer, reply.statusCode, call.t0, tUp, call.eventId);
  if (counter) rec.bytesIn = counter.bytes;
  const upstreamStatus = reply.statusCode;
  res.writeHead(upstreamStatus, clientHeaders(reply.headers, rl));
  // Not pipeline(): it costs an AbortController (+DOMException) per call, about a tenth of the
  // gateway's CPU. Both ends' failures are handled here and in 'close'.
  const body = (answerBody = reply.body);
  const broken = (err: Error) => {
    if (res.writableFinished || res.destroyed) return;
    upstreamBroke = true;
    ctx.logger.warn('upstream response broken off', { error: err.message, api: call.api });
    res.destroy();
  };
  if (rec.strict) return relayStrict(body);
  // By hand rather than pipe(): pipe adds five listeners per call to the two streams; this adds
  // three to the body and one 'drain' only when the client reads slower than the upstream sends.
  finishStatus = upstreamStatus;
  const resume = () => body.resume();
  body.on('data', (chunk: Buffer) => {
    rec.bytesOut += chunk.length;
    if (!res.write(chunk)) {
      body.pause();
      res.once('drain', resume);
    }
  });
  body.on('error', broken);
  body.on('end', () => res.end());

  /**
   * Strict relay: stream the answer but hold back its last chunk until the event is durable, so
   * the client never has a complete answer for an unrecorded call. If the event cannot be
   * stored, the connection is cut: the client sees a broken answer, not a success.
   */
  function relayStrict(src: Readable): void {
    let held: Buffer | null = null;
    src.on('data', (chunk: Buffer) => {
      rec.bytesOut += chunk.length;
      if (held && !res.write(held)) {
        src.pause();
        res.once('drain', () => src.resume());
      }
      held = chunk;
    });
    src.on('error', broken);
    src.on('end', () => {
      if (counter) rec.bytesIn = counter.bytes;
      void rec.record(upstreamStatus).then((durable) => {
        if (res.destroyed) return;
        if (!durable) {
          c.usageUnavailable++;
          ctx.logger.error('usage event not durable: answer cut off', { api: call.api, status: upstreamStatus });
          res.destroy();
          return;
        }
        if (held) res.end(held);
        else res.end();
      });
    });
  }
}
