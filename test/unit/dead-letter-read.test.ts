/**
 * Reading dead letters back: every line is checked field by field, so a line that is valid JSON
 * but not a dead letter (`{"partition":0,"offset":5}`) is reported as unreadable with its line
 * number and why, instead of crashing `meter dead-letters` ("Cannot read properties of undefined").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { FolderDeadLetter, readDeadLetter } from '../../src/log/dead-letter.js';
import { FolderDeadLetterSource, noUnreadable, tallyUnreadable, unreadableWarning, type DeadLetterPage } from '../../src/pipeline/dead-letter-store.js';
import { tempDir } from '../support/tmp.js';

const good = {
  at: '2026-12-05T01:40:12.120Z',
  topic: 'usage-events',
  partition: 0,
  offset: 5,
  timestamp: 1764900000000,
  key: 'ghost',
  reason: 'unknown customer: no customer "ghost" in the warehouse',
  value: Buffer.from('{}').toString('base64'),
};

test('readDeadLetter takes a whole entry and says what is wrong with any other, by field', () => {
  assert.deepEqual(readDeadLetter(JSON.stringify(good)), { ok: true, entry: good });
  const cut = { ...good, valueTruncated: true, valueBytes: 300_000, valueSha256: 'ab' };
  assert.deepEqual(readDeadLetter(JSON.stringify(cut)), { ok: true, entry: cut });
  const problem = (text: string) => {
    const r = readDeadLetter(text);
    assert.equal(r.ok, false, text);
    return r.ok ? '' : r.problem;
  };
  assert.equal(problem('{"partition":0,"offset":5}'), 'field "at" is missing');
  assert.equal(problem('{"at":"x","topic":"t","partition":0,"offset":5,"key":"k","value":""}'), 'field "reason" is missing');
  assert.equal(problem(JSON.stringify({ ...good, reason: 5 })), 'field "reason" is not a string');
  assert.equal(problem(JSON.stringify({ ...good, partition: -1 })), 'field "partition" is not a whole number >= 0');
  assert.equal(problem(JSON.stringify({ ...good, offset: 1.5 })), 'field "offset" is not a whole number >= 0');
  assert.equal(problem(JSON.stringify({ ...good, timestamp: 'now' })), 'field "timestamp" is not a time in ms');
  assert.equal(problem(JSON.stringify({ ...good, timestamp: 1e300 })), 'field "timestamp" is not a time in ms', '"Invalid time value" before');
  assert.equal(problem(JSON.stringify({ ...good, value: 'not base64!' })), 'field "value" is not base64');
  assert.equal(problem(JSON.stringify({ ...good, valueTruncated: 'yes' })), 'field "valueTruncated" is not true');
  assert.equal(problem('{"at":'), 'not JSON');
  assert.equal(problem('[1,2]'), 'not a JSON object');
  assert.equal(problem('null'), 'not a JSON object');
  assert.equal(problem('"a string"'), 'not a JSON object');
});

test('the folder source passes unreadable lines on with their line numbers; the others are read as usual', async () => {
  const dir = tempDir('meter-dl-read-');
  const sink = new FolderDeadLetter(dir, 'usage-events');
  const record = (offset: number) => ({ partition: 0, offset, timestamp: 1764900000000, key: 'ghost', value: Buffer.from('{}') });
  await sink.put(record(1), 'unknown customer: no customer "ghost" in the warehouse');
  appendFileSync(sink.file, '{"partition":0,"offset":5}\nnot json at all\n\n');
  await sink.put(record(4), 'unknown customer: no customer "ghost" in the warehouse');
  appendFileSync(sink.file, `${JSON.stringify({ ...good, timestamp: 'x' })}\n`);
  await sink.close();

  const source = new FolderDeadLetterSource(dir, 'usage-events');
  const pages: DeadLetterPage[] = [];
  for await (const page of source.pages(2)) pages.push(page);
  assert.deepEqual(
    pages.flatMap((p) => p.entries.map((e) => [e.entryId, e.offset])),
    [
      [1, 1],
      [5, 4],
    ],
  );
  assert.deepEqual(
    pages.flatMap((p) => p.unreadable),
    [
      { entryId: 2, problem: 'field "at" is missing' },
      { entryId: 3, problem: 'not JSON' },
      { entryId: 6, problem: 'field "timestamp" is not a time in ms' },
    ],
  );
  const u = noUnreadable();
  for (const p of pages) tallyUnreadable(u, p);
  assert.equal(u.count, 3);
  assert.equal(
    unreadableWarning(u, source),
    `meter: warning: 3 unreadable dead letters in file ${join(dir, 'usage-events.jsonl')} skipped: line 2 (field "at" is missing), line 3 (not JSON), line 6 (field "timestamp" is not a time in ms)\n`,
  );
  assert.equal(unreadableWarning(noUnreadable(), source), null);
  await assert.rejects(sink.entries(), /usage-events\.jsonl line 2 is unreadable: field "at" is missing/);
});

test('the warning names the first five and counts the rest', () => {
  const u = noUnreadable();
  tallyUnreadable(u, { entries: [], unreadable: Array.from({ length: 12 }, (_, i) => ({ entryId: i + 1, problem: 'not JSON' })) });
  assert.deepEqual(
    u.first.map((x) => x.id),
    [1, 2, 3, 4, 5],
  );
  assert.match(
    unreadableWarning(u, { where: 'kafka topic t.dlq', idName: 'offset' }) ?? '',
    /12 unreadable dead letters in kafka topic t\.dlq skipped: offset 1 .*offset 5 \(not JSON\), and 7 more\n$/,
  );
});
