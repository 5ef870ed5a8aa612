/**
 * Text from a request (ids in the path, query parameters) that cannot be stored or compared:
 * NUL, which Postgres text refuses, and the other C0 control characters and DEL, which no id,
 * time or zone name holds. Such text is refused with 400 before it reaches any statement.
 */
const BAD = /[\u0000-\u001f\u007f]/;

export function badBytes(s: string): boolean {
  return BAD.test(s);
}
