/**
 * The secrets of this process (SASL and Redis passwords, passwords inside URLs, billing tokens),
 * remembered when the config is loaded so that anything printed can be scrubbed of them: the
 * CLI's error line, the logger, kafkajs' log lines, `meter doctor`. Masking where a value is shown
 * (`meter config`) is the first line of defence; this is the second, for messages that quote
 * something we did not expect (a URL in a driver's error, a value echoed back).
 */
const remembered = new Set<string>();

/** Shorter values are not scrubbed: replacing every "meter" in a message would garble it. */
const MIN_LENGTH = 6;

export const MASK = '***';

export function rememberSecrets(values: Iterable<string | null | undefined>): void {
  for (const v of values) {
    if (!v || v.length < MIN_LENGTH) continue;
    remembered.add(v);
    // As it appears inside a URL, too.
    const enc = encodeURIComponent(v);
    if (enc !== v) remembered.add(enc);
  }
}

/** Forget all (tests). */
export function forgetSecrets(): void {
  remembered.clear();
}

/** `text` with every remembered secret replaced by ***. */
export function scrub(text: string): string {
  if (!remembered.size || !text) return text;
  let out = text;
  // Longest first: a secret that contains another is replaced whole.
  for (const s of [...remembered].sort((a, b) => b.length - a.length)) if (out.includes(s)) out = out.split(s).join(MASK);
  return out;
}

/**
 * The password of a URL, if any (decoded). A password equal to the user name (the stack's
 * meter:meter) is no secret and is not returned: scrubbing it would mask the user name too.
 */
export function urlPassword(url: string | null): string | null {
  if (!url) return null;
  try {
    const u = new URL(url);
    const fromQuery = [...u.searchParams].filter(([k]) => /pass|secret|token/i.test(k)).map(([, v]) => v);
    const pw = u.password ? decodeURIComponent(u.password) : (fromQuery[0] ?? null);
    return pw !== null && pw === decodeURIComponent(u.username) ? null : pw;
  } catch {
    return null;
  }
}
