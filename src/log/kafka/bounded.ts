/**
 * Closing kafkajs clients with a bound: a disconnect can wait forever on a connection the broker
 * already cut ("write after end"); offsets and files are settled by then, so give up after a while.
 */
export const CLOSE_TIMEOUT_MS = 10_000;

/** Wait for `p` at most `ms`; errors and timeouts are reported, never thrown. */
export async function bounded(p: Promise<unknown>, ms: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)));
  const r = await Promise.race([
    p.then(
      () => 'ok' as const,
      () => 'failed' as const,
    ),
    timeout,
  ]);
  clearTimeout(timer);
  if (r === 'timeout') process.stderr.write(`kafka: ${what} did not finish in ${ms / 1000} s; leaving it\n`);
}
