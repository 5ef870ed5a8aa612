/**
 * A user mistake (bad flag, missing file, unknown customer): printed as one line with a hint,
 * exit code 2, never a stack trace. Anything else is a bug or an outage: exit 1.
 */
export class UserError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'UserError';
  }
}

const FILE_ACCESS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'the file system is read-only',
};

/**
 * A file-system refusal of a path the user chose (the data dir, a spool, a lake folder): a
 * UserError naming the path and the setting, instead of "EACCES: permission denied, mkdir …"
 * with a stack-trace notice. Null for any other error.
 */
export function fileAccessError(e: unknown): UserError | null {
  const err = e as NodeJS.ErrnoException | null;
  const why = err?.code ? FILE_ACCESS[err.code] : undefined;
  if (!why || typeof err?.path !== 'string') return null;
  return new UserError(
    `cannot ${err.syscall ?? 'use'} ${err.path}: ${why}`,
    'run meter as a user who may write there, or point --data-dir (METER_DATA_DIR) at a folder you can write',
  );
}
