/**
 * `meter config | head -1`: the reader stops reading and the next write to stdout fails with
 * EPIPE. Node ignores SIGPIPE, so without a handler the stream's 'error' event crashed the command
 * with a stack trace about half the time. Like other Unix tools, meter then ends at once, without
 * a word (there is no one left to read it), with the exit status of a process ended by SIGPIPE.
 */

/** 128 + SIGPIPE (13): what the shell reports for `git log | head -1` under `set -o pipefail`. */
export const CLOSED_OUTPUT_EXIT = 141;

export function endQuietlyOnClosedOutput(): void {
  for (const stream of [process.stdout, process.stderr])
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(CLOSED_OUTPUT_EXIT);
      // Another write failure (a full disk under `> file`): said on stderr when it still works.
      if (stream !== process.stderr) process.stderr.write(`meter: cannot write the output: ${e.message}\n`);
      process.exit(1);
    });
}
