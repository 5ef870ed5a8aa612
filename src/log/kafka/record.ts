/** A kafkajs message as a LogRecord. */
import type { LogRecord } from '../log.js';

const NO_VALUE = Buffer.alloc(0);

export function toRecord(partition: number, m: { offset: string; key: Buffer | null; value: Buffer | null; timestamp: string }): LogRecord {
  return {
    partition,
    offset: Number(m.offset),
    key: m.key ? m.key.toString('utf8') : '',
    value: m.value ?? NO_VALUE,
    timestamp: Number(m.timestamp),
  };
}
