/**
 * A small WebHDFS REST client on Node's fetch (no `webhdfs` package): the few operations the lake
 * needs, with timeouts, retries with backoff on network errors and 5xx, and errors that carry
 * the NameNode's RemoteException message.
 *
 * WebHDFS quirks handled here:
 * - CREATE is two steps: the NameNode answers 307 with a DataNode Location (no body sent), then
 *   the body goes to that Location. Node's fetch must not follow it by itself (it would resend
 *   without the body), hence `redirect: 'manual'`.
 * - RENAME and DELETE answer HTTP 200 `{"boolean": false}` on failure; the caller checks.
 * - The DataNode answers the body PUT with an unasked-for `100 Continue` before its `201`, which
 *   Node's fetch (undici) rejects as "bad response"; that one request goes through node:http,
 *   which skips informational responses.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export class WebHdfsError extends Error {
  constructor(
    message: string,
    readonly status: number,
    /** RemoteException.exception, e.g. FileNotFoundException. */
    readonly exception?: string,
  ) {
    super(message);
    this.name = 'WebHdfsError';
  }
}

export interface FileStatus {
  pathSuffix: string;
  type: 'FILE' | 'DIRECTORY' | 'SYMLINK';
  length: number;
  modificationTime: number;
}

export interface WebHdfsClientOptions {
  user?: string;
  timeoutMs?: number;
  retries?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class WebHdfsClient {
  private readonly user: string;
  private readonly timeoutMs: number;
  private readonly retries: number;

  /** `base` is the NameNode's http address, e.g. http://127.0.0.1:19870 */
  constructor(
    readonly base: string,
    opts: WebHdfsClientOptions = {},
  ) {
    this.user = opts.user ?? 'meter';
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.retries = opts.retries ?? 4;
  }

  url(path: string, op: string, params: Record<string, string> = {}): string {
    const enc = path.split('/').map(encodeURIComponent).join('/');
    const q = new URLSearchParams({ op, 'user.name': this.user, ...params });
    return `${this.base}/webhdfs/v1${enc.startsWith('/') ? enc : `/${enc}`}?${q}`;
  }

  /**
   * One HTTP exchange with retries. `body` is a function so every try sends a fresh copy.
   * Retries network errors, timeouts and 5xx; 4xx are answers, not faults.
   */
  private async request(method: string, url: string, opts: { body?: () => Buffer; manual?: boolean } = {}): Promise<Response> {
    let lastErr: unknown;
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      if (attempt) await sleep(Math.min(4000, 150 * 2 ** (attempt - 1)));
      try {
        const res = opts.body
          ? await sendBody(method, url, opts.body(), this.timeoutMs)
          : await fetch(url, {
              method,
              redirect: opts.manual ? 'manual' : 'follow',
              signal: AbortSignal.timeout(this.timeoutMs),
            });
        if (res.status >= 500) {
          lastErr = await toError(method, url, res);
          continue;
        }
        return res;
      } catch (e) {
        lastErr = e;
      }
    }
    const e = lastErr as Error & { cause?: { message?: string; code?: string } };
    if (e instanceof WebHdfsError) throw e;
    const cause = e?.cause ? ` (${e.cause.code ?? e.cause.message})` : '';
    throw new WebHdfsError(`${method} ${redact(url)}: ${e?.message ?? e}${cause}`, 0);
  }

  private async json<T>(method: string, path: string, op: string, params?: Record<string, string>): Promise<T> {
    const url = this.url(path, op, params);
    const res = await this.request(method, url);
    if (!res.ok) throw await toError(method, url, res);
    return (await res.json()) as T;
  }

  async status(path: string): Promise<FileStatus | null> {
    try {
      return (await this.json<{ FileStatus: FileStatus }>('GET', path, 'GETFILESTATUS')).FileStatus;
    } catch (e) {
      if (e instanceof WebHdfsError && e.status === 404) return null;
      throw e;
    }
  }

  /** Entries of a directory; null if it does not exist. */
  async list(path: string): Promise<FileStatus[] | null> {
    try {
      const r = await this.json<{ FileStatuses: { FileStatus: FileStatus[] } }>('GET', path, 'LISTSTATUS');
      return r.FileStatuses.FileStatus;
    } catch (e) {
      if (e instanceof WebHdfsError && e.status === 404) return null;
      throw e;
    }
  }

  async mkdirs(path: string): Promise<void> {
    const r = await this.json<{ boolean: boolean }>('PUT', path, 'MKDIRS');
    if (r.boolean !== true) throw new WebHdfsError(`MKDIRS ${path} failed`, 200);
  }

  /** Upload `data` to `path` (overwrite), the two-step way. */
  async create(path: string, data: Buffer): Promise<void> {
    const nnUrl = this.url(path, 'CREATE', { overwrite: 'true' });
    const first = await this.request('PUT', nnUrl, { manual: true });
    if (first.status !== 307) throw await toError('PUT', nnUrl, first);
    const location = first.headers.get('location');
    await first.body?.cancel();
    if (!location) throw new WebHdfsError(`CREATE ${path}: NameNode sent no Location`, first.status);
    const res = await this.request('PUT', location, { body: () => data });
    if (res.status !== 201) throw await toError('PUT', location, res);
    await res.body?.cancel();
  }

  /** Rename; false when WebHDFS says `{"boolean": false}` (missing source, existing destination...). */
  async rename(from: string, to: string): Promise<boolean> {
    const r = await this.json<{ boolean: boolean }>('PUT', from, 'RENAME', { destination: to });
    return r.boolean === true;
  }

  /** Delete; false if there was nothing to delete. */
  async delete(path: string, recursive = false): Promise<boolean> {
    const r = await this.json<{ boolean: boolean }>('DELETE', path, 'DELETE', { recursive: String(recursive) });
    return r.boolean === true;
  }

  /** Read a whole file (the NameNode redirects to a DataNode; fetch follows). */
  async open(path: string): Promise<Buffer> {
    const url = this.url(path, 'OPEN');
    const res = await this.request('GET', url);
    if (!res.ok) throw await toError('GET', url, res);
    return Buffer.from(await res.arrayBuffer());
  }
}

function redact(url: string): string {
  return url.replace(/([?&]delegation=)[^&]*/, '$1…');
}

async function toError(method: string, url: string, res: Response): Promise<WebHdfsError> {
  const text = await res.text().catch(() => '');
  let exception: string | undefined;
  let message = text.slice(0, 500);
  try {
    const j = JSON.parse(text) as { RemoteException?: { exception?: string; message?: string } };
    if (j.RemoteException) {
      exception = j.RemoteException.exception;
      message = `${exception}: ${j.RemoteException.message}`;
    }
  } catch {
    /* not JSON: keep the text */
  }
  return new WebHdfsError(`${method} ${redact(url)} -> HTTP ${res.status}: ${message}`, res.status, exception);
}

/** PUT/POST a body with node:http (see the note at the top), answered as a fetch Response. */
function sendBody(method: string, url: string, body: Buffer, timeoutMs: number): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? httpsRequest : httpRequest)(
      url,
      {
        method,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length) },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const headers = new Headers();
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers.set(k, v);
          const status = res.statusCode ?? 0;
          const payload = status === 204 || status === 304 ? null : Buffer.concat(chunks);
          resolve(new Response(payload, { status, headers }));
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}
