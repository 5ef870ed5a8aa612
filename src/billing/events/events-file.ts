/**
 * The events of a file for `meter events send`: JSON lines (one event per line, blank lines
 * skipped) or one JSON array; `-` is stdin. JSON lines are streamed; an array is read whole, so
 * it is bounded (MAX_ARRAY_FILE_BYTES), and a bigger set should be JSON lines.
 */
import { createReadStream, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { fsErrorText, shortPath } from '../../ground/text.js';

export const MAX_ARRAY_FILE_BYTES = 64 * 1024 * 1024;
/** A longer line cannot be one event the API takes (cloud-event.ts bounds each part); it is refused unparsed. */
export const MAX_LINE_CHARS = 64 * 1024;

/** One event of the file, or why it is not one; `where` names it for the user (`line 7`, `item 3`). */
export type FileItem = { where: string; event: unknown } | { where: string; bad: string };

export class EventsFileError extends Error {
  override name = 'EventsFileError';
}

export async function* readEventsFile(path: string, stdin: Readable = process.stdin): AsyncGenerator<FileItem> {
  // A folder opens like a file and fails only on the first read, with a bare EISDIR.
  if (path !== '-' && isFolder(path)) throw new EventsFileError(`cannot read ${shortPath(path)}: it is a folder, not a file`);
  const input = path === '-' ? stdin : createReadStream(path);
  const opened = new Promise<void>((resolve, reject) => {
    if (path === '-') return resolve();
    input.once('open', () => resolve());
    input.once('error', (e: NodeJS.ErrnoException) =>
      reject(new EventsFileError(`cannot read ${shortPath(path)}: ${e.code === 'ENOENT' ? 'no such file' : fsErrorText(e)}`)),
    );
  });
  await opened;
  const lines = createInterface({ input, crlfDelay: Infinity });
  let n = 0;
  let array: string[] | null = null;
  let arrayChars = 0;
  let seenLine = false;
  for await (const line of lines) {
    n++;
    if (array) {
      arrayChars += line.length + 1;
      if (arrayChars > MAX_ARRAY_FILE_BYTES)
        throw new EventsFileError(`${shortPath(path)}: a JSON array larger than ${MAX_ARRAY_FILE_BYTES} bytes; write one event per line (JSON lines) instead`);
      array.push(line);
      continue;
    }
    const t = line.trim();
    if (!t) continue;
    // An array only as the file's first non-blank line; later, a line is one event.
    if (!seenLine && t.startsWith('[')) {
      array = [line];
      arrayChars = line.length + 1;
      continue;
    }
    seenLine = true;
    if (line.length > MAX_LINE_CHARS) {
      yield { where: `line ${n}`, bad: `longer than ${MAX_LINE_CHARS} characters` };
      continue;
    }
    try {
      yield { where: `line ${n}`, event: JSON.parse(line) };
    } catch {
      yield { where: `line ${n}`, bad: 'not JSON' };
    }
  }
  if (array) {
    let items: unknown;
    try {
      items = JSON.parse(array.join('\n'));
    } catch {
      throw new EventsFileError(`${shortPath(path)}: starts with [ but is not one JSON array (give one array, or one event per line)`);
    }
    if (!Array.isArray(items)) throw new EventsFileError(`${shortPath(path)}: starts with [ but is not one JSON array`);
    for (let i = 0; i < items.length; i++) yield { where: `item ${i}`, event: items[i] };
  }
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false; // missing or unreadable: the open says which
  }
}
