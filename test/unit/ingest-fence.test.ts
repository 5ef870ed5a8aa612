/** The publish fence (src/pipeline/publish-fence.ts): lease, renewal, refusal, stale assignment. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Fenced, PublishFence, type Leased } from '../../src/pipeline/publish-fence.js';

function setup(sessionTimeoutMs: number | undefined) {
  const commits: [number, number][] = [];
  let refuse: Error | null = null;
  let assignment = 1;
  const fence = new PublishFence(
    sessionTimeoutMs,
    async (p, next) => {
      if (refuse) throw refuse;
      commits.push([p, next]);
    },
    () => assignment,
  );
  const st: Leased = { p: 3, gone: false, leaseFrom: -Infinity, assignment: 1 };
  return { fence, st, commits, refuse: (e: Error | null) => (refuse = e), reassign: () => assignment++ };
}

test('fence: a rename within the lease needs no round trip; past it the commit is renewed first', async () => {
  const s = setup(30_000);
  assert.equal(s.fence.leaseMs, 10_000);
  await s.fence.confirm(s.st, 100);
  assert.deepEqual(s.commits, [[3, 100]]);
  await s.fence.check(s.st, 100);
  assert.equal(s.commits.length, 1, 'inside the lease: no commit');
  s.st.leaseFrom = performance.now() - 10_001; // as after a pause longer than the lease
  await s.fence.check(s.st, 100);
  assert.deepEqual(
    s.commits,
    [
      [3, 100],
      [3, 100],
    ],
    'renewed',
  );
  assert.ok(performance.now() - s.st.leaseFrom < 1000);
});

test('fence: a refused renewal, a revoked partition or a newer assignment stop the rename', async () => {
  const s = setup(30_000);
  await s.fence.confirm(s.st, 50);
  s.st.leaseFrom = -Infinity;
  s.refuse(Object.assign(new Error('The coordinator is not aware of this member'), { type: 'UNKNOWN_MEMBER_ID' }));
  await assert.rejects(s.fence.check(s.st, 50), (e: Error) => e instanceof Fenced && /refused the commit that renews the lease/.test(e.message));
  s.refuse(null);

  const r = setup(30_000);
  await r.fence.confirm(r.st, 50);
  r.st.gone = true;
  await assert.rejects(r.fence.check(r.st, 50), /was revoked/);
  await assert.rejects(r.fence.confirm(r.st, 60), /was revoked/);
  assert.equal(r.commits.length, 1, 'no commit for a revoked partition');

  // the group accepts the commit (this member is in the new generation) but the state is older
  const a = setup(30_000);
  a.reassign();
  await assert.rejects(a.fence.confirm(a.st, 10), /earlier assignment/);
  await assert.rejects(a.fence.check(a.st, 10), /earlier assignment/);
});

test('fence: a log without group sessions (embedded) has no lease to run out', async () => {
  const s = setup(undefined);
  assert.equal(s.fence.leaseMs, Infinity);
  await s.fence.confirm(s.st, 5);
  s.st.leaseFrom = performance.now() - 1e9;
  await s.fence.check(s.st, 5);
  assert.equal(s.commits.length, 1);
});
