/** Answers the gateway makes itself (JSON errors), and their order with the call's event. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GatewayRecorder } from '../observability/gateway-recorder.js';
import { USAGE_UNAVAILABLE } from './admit.js';
import type { GatewayCounts } from './counts.js';
import type { CallRecord } from './record.js';

export class Responder {
  constructor(
    private readonly counts: GatewayCounts,
    private readonly maxBodyBytes: number,
    private readonly metrics?: GatewayRecorder,
  ) {}

  json(req: IncomingMessage, res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}, closeConnection = false): void {
    this.metrics?.answered(req, status, body, headers);
    const text = JSON.stringify(body);
    const h: Record<string, string | number> = { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) };
    // An unread request body longer than we accept is not worth reading: close the connection.
    const declared = Number(req.headers['content-length'] ?? 0);
    if (!req.readableEnded) {
      if (closeConnection || declared > this.maxBodyBytes) h.connection = 'close';
      else req.resume();
    }
    res.writeHead(status, h);
    res.end(req.method === 'HEAD' ? undefined : text);
  }

  usageUnavailable(req: IncomingMessage, res: ServerResponse): void {
    this.counts.usageUnavailable++;
    this.json(req, res, 503, USAGE_UNAVAILABLE, { 'retry-after': '5' });
  }

  /** A gateway-made answer to an admitted call: in strict mode only once its event is durable. */
  async answer(
    req: IncomingMessage,
    res: ServerResponse,
    rec: CallRecord,
    status: number,
    body: unknown,
    headers: Record<string, string>,
    closeConnection = false,
  ): Promise<void> {
    if (rec.strict) {
      if (!(await rec.record(status))) return this.usageUnavailable(req, res);
      if (res.destroyed) return;
      this.json(req, res, status, body, headers, closeConnection);
    } else {
      this.json(req, res, status, body, headers, closeConnection);
      void rec.record(status);
    }
  }
}
