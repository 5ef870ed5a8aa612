/**
 * `fn` over `items` with at most `limit` calls in flight, results in the items' order: the lake's
 * listings go to WebHDFS one HTTP request each, so a lake of many days is listed in parallel
 * without opening a connection per folder at once.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  // one iterator shared by the workers: each takes the next item
  const next = items.entries();
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    for (const [k, item] of next) out[k] = await fn(item);
  });
  await Promise.all(workers);
  return out;
}
