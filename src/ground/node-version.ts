/**
 * The Node.js meter is built and tested for (package.json `engines`, CI runs 22 and 24). An older
 * one ran without a word, most commands working, until one did not; now every command says so
 * once on stderr, and goes on.
 */
export const MIN_NODE = [22, 19] as const;

/** The warning for this Node version, or null when it is recent enough. */
export function nodeVersionWarning(version: string): string | null {
  const [major = 0, minor = 0] = version.replace(/^v/, '').split('.').map(Number);
  if (major > MIN_NODE[0] || (major === MIN_NODE[0] && minor >= MIN_NODE[1])) return null;
  return `Node.js ${version.replace(/^v/, '')} is older than the ${MIN_NODE.join('.')} meter needs; some commands may fail (use Node.js 22.19 or later, e.g. 24 LTS)`;
}
