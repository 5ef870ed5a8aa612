/**
 * Names of log topics and consumer groups. They become folder and file names of the embedded
 * log (`<dir>/<topic>/_consumers/<group>.json`) and dead-letter files, so they are checked
 * where they enter (settings, flags) as well as where they are used: a name like `../x` must
 * never reach a path. Kafka's own rule is narrower in length only (249).
 */
import { quote } from './text.js';

const NAME = /^[A-Za-z0-9._-]{1,200}$/;

/** Why `name` cannot be a topic (or a consumer group), or null when it can. */
export function logNameProblem(kind: 'topic' | 'consumer group', name: string): string | null {
  // A topic starting with `_` would collide with the log's own `_consumers` and `_topic.json`.
  const badStart = kind === 'topic' ? /^[._]/ : /^\./;
  if (NAME.test(name) && !badStart.test(name)) return null;
  return `${kind} name ${quote(name)} must be 1-200 of A-Z a-z 0-9 . _ - (not starting with .${kind === 'topic' ? ' or _' : ''})`;
}
