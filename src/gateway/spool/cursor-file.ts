/**
 * The spool's shipping cursor on disk, written so that it never needs new disk space: one file
 * of 4 KiB allocated when the spool is created, rewritten in place. A full disk (the very
 * moment the spool must record that the log took its records) cannot stop it, unlike a temp
 * file + rename, which needs a new file each time.
 *
 * Two 64-byte slots, written alternately, each `MSPC` + u32 crc32 + u64 sequence + u64 next
 * offset (+ padding): a write torn by a crash spoils one slot, and the other still holds the
 * previous cursor. Reading takes the valid slot with the higher sequence.
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { crc32 } from '../../log/file-log/crc32.js';

const FILE_BYTES = 4096;
const SLOT_BYTES = 64;
const MAGIC = 0x4d535043; // "MSPC"

export class CursorFile {
  private seq = 0n;

  private constructor(
    private readonly fh: FileHandle,
    readonly file: string,
    private value: number | null,
  ) {}

  /** Opens the cursor file, creating (and filling) it if absent. `null` value: never written. */
  static async open(file: string): Promise<CursorFile> {
    let fh: FileHandle;
    try {
      fh = await fsp.open(file, 'r+');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      // Written under a temp name and renamed, so the file is either absent or whole.
      const tmp = `${file}.new`;
      const init = await fsp.open(tmp, 'w');
      try {
        await init.writeFile(Buffer.alloc(FILE_BYTES));
        await init.sync();
      } finally {
        await init.close();
      }
      await fsp.rename(tmp, file);
      fh = await fsp.open(file, 'r+');
    }
    const buf = Buffer.alloc(FILE_BYTES);
    await fh.read(buf, 0, FILE_BYTES, 0);
    const c = new CursorFile(fh, file, null);
    let best: { seq: bigint; next: number } | null = null;
    for (let i = 0; i < 2; i++) {
      const slot = readSlot(buf.subarray(i * SLOT_BYTES, (i + 1) * SLOT_BYTES));
      if (slot && (!best || slot.seq > best.seq)) best = slot;
    }
    if (best) {
      c.seq = best.seq;
      c.value = best.next;
    }
    return c;
  }

  /** The last cursor written, or null if none was. */
  get next(): number | null {
    return this.value;
  }

  /** Write `next` durably, in place (into the slot not holding the current value). */
  async write(next: number): Promise<void> {
    const seq = this.seq + 1n;
    const slot = Buffer.alloc(SLOT_BYTES);
    slot.writeUInt32BE(MAGIC, 0);
    slot.writeBigUInt64BE(seq, 8);
    slot.writeBigUInt64BE(BigInt(next), 16);
    slot.writeUInt32BE(crc32(slot.subarray(8, 24)), 4);
    await this.fh.write(slot, 0, SLOT_BYTES, Number(seq % 2n) * SLOT_BYTES);
    await this.fh.datasync();
    this.seq = seq;
    this.value = next;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

function readSlot(b: Buffer): { seq: bigint; next: number } | null {
  if (b.readUInt32BE(0) !== MAGIC) return null;
  if (b.readUInt32BE(4) !== crc32(b.subarray(8, 24))) return null;
  return { seq: b.readBigUInt64BE(8), next: Number(b.readBigUInt64BE(16)) };
}
