/**
 * Reads a meter's JSON path out of an event's `data` in JS as the rollup reads it with DuckDB's
 * `json_extract_string` (pipeline/meter-count.ts), so the live path's provisional meter rows
 * follow the rollup's rules: a string is its text; an integer its digits, exact (JSON.parse would
 * round 123456789012345678); any other number a double, written as DuckDB writes one ("1.5" for
 * 1.50, "1000.0" for 1e3); true/false their names; an object or array its JSON text; null or a
 * missing step null. And decimalValue turns that text into a meter value as DuckDB's
 * TRY_CAST(... AS DECIMAL(27, 9)) does.
 *
 * A small parser of its own, for the integers' exact digits. Its input is bounded: `data` is at
 * most 4 KiB (events/schema.ts), and nesting deeper than MAX_DEPTH is refused (read as null).
 */

type J = null | boolean | string | { num: string } | J[] | { obj: [string, J][] };

const MAX_DEPTH = 64;
const STEP_RE = /\.([A-Za-z_][A-Za-z0-9_]*)|\[([0-9]+)\]/gy;

class Bad extends Error {}

function parse(s: string): J {
  let i = 0;
  const ws = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\n' || s[i] === '\r' || s[i] === '\t')) i++;
  };
  const value = (depth: number): J => {
    if (depth > MAX_DEPTH) throw new Bad();
    ws();
    const c = s[i];
    if (c === '{') {
      i++;
      const obj: [string, J][] = [];
      ws();
      if (s[i] === '}') return (i++, { obj });
      for (;;) {
        ws();
        if (s[i] !== '"') throw new Bad();
        const k = str();
        ws();
        if (s[i++] !== ':') throw new Bad();
        obj.push([k, value(depth + 1)]);
        ws();
        if (s[i] === ',') i++;
        else if (s[i] === '}') return (i++, { obj });
        else throw new Bad();
      }
    }
    if (c === '[') {
      i++;
      const arr: J[] = [];
      ws();
      if (s[i] === ']') return (i++, arr);
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        if (s[i] === ',') i++;
        else if (s[i] === ']') return (i++, arr);
        else throw new Bad();
      }
    }
    if (c === '"') return str();
    for (const [word, v] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const)
      if (s.startsWith(word, i)) return ((i += word.length), v);
    const m = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
    m.lastIndex = i;
    const n = m.exec(s);
    if (!n) throw new Bad();
    i += n[0].length;
    return { num: n[0] };
  };
  const str = (): string => {
    const m = /"(?:[^"\\\u0000-\u001f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"/y;
    m.lastIndex = i;
    const r = m.exec(s);
    if (!r) throw new Bad();
    i += r[0].length;
    return JSON.parse(r[0]) as string;
  };
  const v = value(0);
  ws();
  if (i !== s.length) throw new Bad();
  return v;
}

function text(j: J): string {
  if (j === null) return 'null';
  if (typeof j === 'boolean') return String(j);
  if (typeof j === 'string') return JSON.stringify(j);
  if (Array.isArray(j)) return `[${j.map(text).join(',')}]`;
  if ('num' in j) return numberText(j.num);
  return `{${j.obj.map(([k, v]) => `${JSON.stringify(k)}:${text(v)}`).join(',')}}`;
}

const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

/** A JSON number as DuckDB writes it back: an integer of 64 bits exactly, else the double, with ".0" when whole. */
function numberText(raw: string): string {
  if (/^-?[0-9]+$/.test(raw)) {
    const b = BigInt(raw);
    if (b >= INT64_MIN && b <= UINT64_MAX) return b.toString();
  }
  const t = String(Number(raw));
  return /^-?[0-9]+$/.test(t) ? `${t}.0` : t;
}

/** Meter values: DECIMAL(27, 9), from 0 to below 10^18 (as meter-count.ts VALUE_TYPE and its check). */
const SCALE = 9;
const LIMIT = 10n ** BigInt(18 + SCALE);
const DECIMAL_RE = /^\s*([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]{1,4}))?\s*$/;

/**
 * A value's text as a meter value (decimal text with up to 9 places, rounded half up), or null
 * when it is no number, negative, or 10^18 or more: what TRY_CAST(text AS DECIMAL(27, 9)) >= 0
 * keeps in the rollup.
 */
export function decimalValue(t: string | null): string | null {
  if (t === null) return null;
  const m = DECIMAL_RE.exec(t);
  if (!m) return null;
  const int = m[2] ?? '';
  const frac = m[3] ?? '';
  if (int === '' && frac === '') return null;
  // digits * 10^(exp - frac.length), then at scale 9 rounded half up
  const digits = BigInt(int + frac || '0');
  const shift = Number(m[4] ?? 0) - frac.length + SCALE;
  let units: bigint;
  if (shift >= 0) {
    if (shift > 40) return digits === 0n ? '0' : null;
    units = digits * 10n ** BigInt(shift);
  } else {
    if (-shift > 60) return '0';
    const d = 10n ** BigInt(-shift);
    units = (digits + d / 2n) / d;
  }
  if (units >= LIMIT || (m[1] === '-' && units !== 0n)) return null;
  const s = units.toString().padStart(SCALE + 1, '0');
  const whole = s.slice(0, -SCALE);
  const part = s.slice(-SCALE).replace(/0+$/, '');
  return part ? `${whole}.${part}` : whole;
}

/** Parsed `data` of one event, read by several paths (the meters of its type). */
export class EventData {
  private readonly root: J | undefined;

  constructor(data: string | undefined) {
    try {
      this.root = data === undefined ? undefined : parse(data);
    } catch (e) {
      if (!(e instanceof Bad)) throw e;
      this.root = undefined;
    }
  }

  /** The value at a meters.ts JSON path (`$`, then `.name` or `[index]` steps) as json_extract_string gives it. */
  read(path: string): string | null {
    let j: J | undefined = this.root;
    STEP_RE.lastIndex = 1;
    for (let m = STEP_RE.exec(path); m && j !== undefined; m = STEP_RE.exec(path)) {
      if (m[1] !== undefined) j = j !== null && typeof j === 'object' && 'obj' in j ? j.obj.find(([k]) => k === m![1])?.[1] : undefined;
      else j = Array.isArray(j) ? j[Number(m[2])] : undefined;
    }
    if (j === undefined || j === null) return null;
    if (typeof j === 'string') return j;
    return text(j);
  }
}
