/** A request body read whole, up to a bound: more than `max` bytes is refused unread beyond it. */
import type { IncomingMessage } from 'node:http';

export type Body = { ok: true; bytes: Buffer } | { ok: false; tooLarge: true };

export function readBody(req: IncomingMessage, max: number): Promise<Body> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > max) return Promise.resolve({ ok: false, tooLarge: true });
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (b: Body) => {
      if (done) return;
      done = true;
      req.off('data', onData);
      resolve(b);
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > max) {
        // Stop reading; the answer closes the connection (the rest is never read).
        req.pause();
        return finish({ ok: false, tooLarge: true });
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.once('end', () => finish({ ok: true, bytes: Buffer.concat(chunks, size) }));
    req.once('error', (e) => {
      if (!done) {
        done = true;
        reject(e);
      }
    });
  });
}
