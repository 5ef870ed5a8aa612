/**
 * Rows in Postgres COPY's text format: one row a line, columns separated by tabs, `\N` for NULL. A backslash, tab, newline
 * or carriage return inside a value is written as its backslash escape, so any text (customer
 * ids and API names come from outside) stays one value; every other character is itself.
 */
const SPECIAL = /[\\\t\n\r]/g;
const HAS_SPECIAL = /[\\\t\n\r]/; // no `g`: test() must not keep a lastIndex between values
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

export function copyValue(v: string | bigint | number | null): string {
  if (v === null) return '\\N';
  const s = String(v);
  return HAS_SPECIAL.test(s) ? s.replace(SPECIAL, (c) => ESCAPES[c]!) : s;
}

/** The lines of `rows`, each a list of column values in the COPY statement's column order. */
export function copyText(rows: Iterable<(string | bigint | number | null)[]>): string {
  const out: string[] = [];
  for (const r of rows) out.push(`${r.map(copyValue).join('\t')}\n`);
  return out.join('');
}
