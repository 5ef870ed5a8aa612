/**
 * User text in messages and on the terminal: a value quoted in an error is cut (a 100 KB argument
 * was echoed whole), control characters are shown as escapes (a name holding ESC or a newline
 * recoloured the terminal and broke the table), and a stored label is checked once where it enters.
 */

/** Characters of a user's value an error quotes; the rest is counted, not shown. */
export const QUOTE_CHARS = 60;

/** Characters of a path (a file, a folder, a URL path) a message shows: a path is of use whole, so more. */
export const PATH_CHARS = 300;

/** The longest label meter stores (a customer's or a plan's name): one table cell, one invoice line. */
export const MAX_LABEL_CHARS = 200;

/** C0 controls, DEL and C1 controls: none belongs in a name, and a terminal acts on them. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const CONTROLS = /[\u0000-\u001f\u007f-\u009f]/g;

const ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** One control character as it is shown: `\n`, `\r`, `\t`, else `\xHH`. */
function escapeChar(c: string): string {
  return ESCAPES[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
}

/** `s` with each control character written as an escape, so printing it cannot act on the terminal. */
export function visible(s: string): string {
  return CONTROL.test(s) ? s.replace(CONTROLS, escapeChar) : s;
}

/** The tail that says how long a cut value was. */
const cutNote = (length: number) => `…(${length} characters)`;

/** `s` as a message shows it unquoted (a path, a word): visible, its first QUOTE_CHARS characters and its length when longer. */
export function shorten(s: string, max = QUOTE_CHARS): string {
  return s.length > max ? `${visible(s.slice(0, max))}${cutNote(s.length)}` : visible(s);
}

/** A path as a message shows it: visible, cut past PATH_CHARS. */
export const shortPath = (p: string): string => shorten(p, PATH_CHARS);

/**
 * A user's value as an error quotes it: JSON-quoted (control characters escaped), its first
 * QUOTE_CHARS characters and its length when longer: `"aaaa…"…(100000 characters)`.
 * Values that are not strings (a number in a config file) are shown as JSON, cut alike.
 */
export function quote(v: unknown, max = QUOTE_CHARS): string {
  if (typeof v === 'string') return v.length > max ? `${visible(JSON.stringify(v.slice(0, max)))}${cutNote(v.length)}` : visible(JSON.stringify(v));
  const s = JSON.stringify(v) ?? String(v);
  return s.length > max ? `${visible(s.slice(0, max))}${cutNote(s.length)}` : visible(s);
}

/**
 * Why `v` cannot be a stored label (a customer's name, a plan's), or null when it can: at most
 * `max` characters, no control character. Said without echoing the value.
 */
export function labelProblem(v: string, max = MAX_LABEL_CHARS): string | null {
  if (v.length > max) return `is ${v.length} characters long`;
  const m = CONTROL.exec(v);
  if (m) return `holds a control character (${escapeChar(m[0])} at character ${m.index + 1})`;
  return null;
}

/**
 * A file system error without the path Node puts in its message ("ENOENT: no such file or
 * directory, open '<path>'"): the caller names the path once, shortened.
 */
export function fsErrorText(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return /^E[A-Z]+: [^,]*/.exec(message)?.[0] ?? shorten(message);
}
