/**
 * Why `meter events send|cancel|correct` could not reach the billing API, for the user: fetch
 * says only "fetch failed" and its cause printed as "Error: connect ECONNREFUSED …"; this is the
 * cause's own message and where to look.
 */
export function unreachableMessage(url: string, e: unknown): string {
  const cause = (e as Error).cause as Error | undefined;
  if (cause?.message === 'bad port')
    return `cannot reach the billing API at ${url}: fetch() refuses its port (one of the Fetch standard's bad ports; meter serve-billing does not take them): --url must name the port the billing API listens on`;
  return `cannot reach the billing API at ${url}: ${cause?.message ?? (e as Error).message} (is \`meter serve-billing\` or \`meter dev\` running there? --url sets the address)`;
}
