/** The one wait-for-a-condition helper of the tests: poll instead of sleeping a fixed time. */

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

type Truthy<T> = Exclude<T, false | null | undefined | 0 | ''>;

/**
 * Poll `fn` every `everyMs` until it returns a truthy value, and return that value. An error thrown
 * by `fn` counts as "not yet" (a service still starting); the last error or value is quoted if the
 * wait times out.
 * `what` names the condition for the timeout message; a function is called only then, so it can
 * add the state seen at that moment.
 */
export async function until<T>(
  what: string | (() => string | Promise<string>),
  fn: () => T | Promise<T>,
  timeoutMs = 30_000,
  everyMs = 20,
): Promise<Truthy<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as Truthy<T>;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) break;
    await sleep(everyMs);
  }
  const name = typeof what === 'string' ? what : await what();
  const seen = last instanceof Error ? `: ${last.message}` : last == null || last === false ? '' : `; last: ${JSON.stringify(last)}`;
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${name}${seen}`);
}
