/**
 * The request target, reduced to the one path that is both priced and forwarded
 * (docs/routing-and-identity.md, "One path, one price").
 *
 * The route is chosen on this path and the upstream gets exactly this path, so an upstream that
 * normalises paths itself (most frameworks do) cannot serve a different operation than the one
 * billed. What cannot be reduced to one meaning is refused with 400:
 *
 *   origin-form `/a/b?q`      used as is, after normalisation
 *   absolute-form `http://h/p` RFC 9112 3.2.2: the target's path is used, its authority stands in
 *                             for Host (userinfo, other schemes: 400)
 *   anything else (`*`, authority-form, a fragment): 400
 *
 * Normalisation (RFC 3986 6.2.2): percent-encoded unreserved characters decoded, other
 * percent-encodings upper-cased, dot segments removed (5.2.4), repeated slashes collapsed.
 * Refused (400): a byte outside RFC 3986's pchar set (`\`, `"`, `<`, space...), an encoded `/` or
 * `\` (%2F, %5C: one segment or two depending on the server), encoded control bytes (NUL and
 * the other C0 bytes, DEL), a malformed escape, an encoded escape (`%25` + two hex digits: `%2e`
 * after one decoding, `.` after two), and a matrix parameter on an empty or dot segment
 * (`..;x`, `.;x`, `;x`: servers that drop `;params` before resolving dots, as Tomcat does, read
 * `/a/..;/b` as `/b`). Other `;params` stay part of their segment.
 *
 * Work is linear in the target's length, which Node's header limit bounds.
 */

export type RequestTarget =
  | {
      ok: true;
      /** Normalised absolute path, never empty. */
      path: string;
      /** `?...` as received, or ''. */
      query: string;
      /** Authority of an absolute-form target (RFC 9112 3.2.2: it replaces Host), else null. */
      authority: string | null;
    }
  | { ok: false; reason: TargetProblem; message: string };

export type TargetProblem = 'bad_target_form' | 'bad_byte' | 'bad_escape' | 'encoded_separator' | 'encoded_control' | 'double_encoding' | 'ambiguous_segment';

/** Bit set per ASCII code: allowed raw in a path segment (RFC 3986 pchar minus `%`, plus `/`). */
const PCHAR = new Uint8Array(128);
const UNRESERVED = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~') UNRESERVED[c.charCodeAt(0)] = 1;
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/") PCHAR[c.charCodeAt(0)] = 1;
const HEX = '0123456789ABCDEF';

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

const fail = (reason: TargetProblem, message: string): RequestTarget => ({ ok: false, reason, message });

/** Parse and normalise `req.url` (the raw request-target). */
export function parseRequestTarget(raw: string): RequestTarget {
  let rest = raw;
  let authority: string | null = null;
  if (raw.charCodeAt(0) !== 47 /* / */) {
    const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)/.exec(raw);
    if (!m) return fail('bad_target_form', 'the request target must be a path starting with "/" (or an absolute http URL)');
    // both groups always take part in a match (the second may be empty)
    const [whole, schemeText = '', authorityText = ''] = m;
    const scheme = schemeText.toLowerCase();
    if (scheme !== 'http' && scheme !== 'https') return fail('bad_target_form', `the request target's scheme "${clip(schemeText)}" is not http or https`);
    authority = authorityText;
    if (authority.includes('@')) return fail('bad_target_form', 'the request target carries userinfo ("user@host"), which HTTP does not allow');
    if (!/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]+)(:[0-9]*)?$/.test(authority))
      return fail('bad_target_form', `the request target's host "${clip(authority)}" is not a valid host[:port]`);
    rest = raw.slice(whole.length);
    if (rest === '' || rest.charCodeAt(0) === 63 /* ? */) rest = '/' + rest;
  }
  const q = rest.indexOf('?');
  const rawPath = q === -1 ? rest : rest.slice(0, q);
  const query = q === -1 ? '' : rest.slice(q);
  for (let i = 0; i < query.length; i++) {
    const c = query.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f || c === 35 /* # */)
      return fail('bad_byte', `the query string holds a byte that is not allowed (${describeByte(c)}); percent-encode it`);
  }

  // Fast path: only plain pchars, no escape, no dot segment, no doubled slash, no `;`.
  let plain = true;
  for (let i = 0; i < rawPath.length; i++) {
    const c = rawPath.charCodeAt(i);
    if (c >= 128 || PCHAR[c] === 0) {
      if (c === 37 /* % */) {
        plain = false;
        continue;
      }
      return fail('bad_byte', `the path holds a byte that is not allowed in a URL path (${describeByte(c)}); percent-encode it`);
    }
    if (c === 59 /* ; */ || (c === 47 && (rawPath.charCodeAt(i + 1) === 47 || rawPath.charCodeAt(i + 1) === 46))) plain = false;
  }
  if (plain) return { ok: true, path: rawPath, query, authority };

  const out: string[] = [];
  const segs = rawPath.split('/');
  // segs[0] is '' (the path starts with '/'); an empty segment elsewhere is a doubled or trailing slash.
  let trailing = false;
  for (let s = 1; s < segs.length; s++) {
    const d = decodeSegment(segs[s] ?? '');
    if (typeof d !== 'string') return d;
    const last = s === segs.length - 1;
    if (d === '') {
      if (last) trailing = true;
      continue;
    }
    if (d === '.' || d === '..') {
      if (d === '..') out.pop();
      if (last) trailing = true;
      continue;
    }
    const semi = matrixStart(d);
    if (semi !== -1) {
      const name = d.slice(0, semi);
      if (name === '' || name === '.' || name === '..')
        return fail('ambiguous_segment', `the path segment "${clip(d)}" puts a ;parameter on an empty or dot segment, which servers resolve differently`);
    }
    out.push(d);
  }
  const path = out.length === 0 ? '/' : '/' + out.join('/') + (trailing ? '/' : '');
  return { ok: true, path, query, authority };
}

/** Index of the first `;` or `%3B` (a server that decodes first sees both as `;`), or -1. */
function matrixStart(seg: string): number {
  const a = seg.indexOf(';');
  const b = seg.indexOf('%3B');
  if (a === -1) return b;
  if (b === -1) return a;
  return Math.min(a, b);
}

/** Normalise one segment's escapes; an error result when the segment is refused. */
function decodeSegment(seg: string): string | RequestTarget {
  if (seg.indexOf('%') === -1) return seg;
  let out = '';
  for (let i = 0; i < seg.length; i++) {
    const c = seg.charCodeAt(i);
    if (c !== 37) {
      out += seg[i];
      continue;
    }
    const h = hexVal(seg.charCodeAt(i + 1));
    const l = hexVal(seg.charCodeAt(i + 2));
    if (h < 0 || l < 0)
      return fail('bad_escape', `the path holds "%" not followed by two hex digits ("${clip(seg.slice(i, i + 3))}"); write a literal % as %25`);
    const b = h * 16 + l;
    i += 2;
    if (b < 128 && UNRESERVED[b]) {
      out += String.fromCharCode(b);
      continue;
    }
    if (b === 0x2f || b === 0x5c)
      return fail('encoded_separator', `the path holds an encoded ${b === 0x2f ? '"/" (%2F)' : '"\\" (%5C)'}, which servers read as one segment or two`);
    if (b < 0x20 || b === 0x7f) return fail('encoded_control', `the path holds an encoded control byte (%${HEX[h]}${HEX[l]}${b === 0 ? ', NUL' : ''})`);
    out += '%' + HEX[h] + HEX[l];
  }
  // Checked on the result, so `%25%32%65` (-> `%252e`) is caught as well as `%252e`.
  const dbl = /%25[0-9A-Fa-f]{2}/.exec(out);
  if (dbl) return fail('double_encoding', `the path holds an encoded escape ("${dbl[0]}"), which a server that decodes twice reads differently`);
  return out;
}

function describeByte(c: number): string {
  if (c < 0x20 || c === 0x7f) return `control byte 0x${c.toString(16).padStart(2, '0')}`;
  if (c === 0x20) return 'a space';
  if (c >= 0x80) return 'a non-ASCII character';
  return `"${String.fromCharCode(c)}"`;
}

function clip(s: string): string {
  return s.length > 60 ? s.slice(0, 60) + '…' : s;
}
