/** What a full (or failing) disk looks like to the spool. */
import { promises as fsp } from 'node:fs';

/** Write errors that mean "this disk takes no more now": the spool is full, not broken. */
const FULL_CODES = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'EFBIG']);

export function isDiskFull(e: unknown): boolean {
  return FULL_CODES.has((e as NodeJS.ErrnoException)?.code ?? '');
}

/** Bytes an unprivileged writer may still use on the file system of `path`. */
export async function diskFreeBytes(path: string): Promise<number> {
  const s = await fsp.statfs(path);
  return s.bavail * s.bsize;
}
