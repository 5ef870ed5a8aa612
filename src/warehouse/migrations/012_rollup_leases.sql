-- Rollup work shared between processes (docs/scaling.md): a follower or a backfill claims an
-- hour here before computing it. A claim is a lease: holder + expiry, renewed while the holder
-- works, free again when it finishes or when the expiry passes (its holder died). done_at /
-- done_claimed_at say when the hour was last finished and when that run had claimed it (its
-- lake reads came after that time), so a process skips an hour another finished after it
-- started looking.
CREATE TABLE IF NOT EXISTS rollup_leases (
  hour            timestamptz PRIMARY KEY,
  holder          text,
  expires_at      timestamptz,
  claimed_at      timestamptz,
  done_at         timestamptz,
  done_claimed_at timestamptz
);

-- Backfills of the same range started together are one job: the second joins the first (takes
-- its start as "done since"), so between them each hour is computed once. seen_at is renewed
-- while a backfill works; a job not seen for a while, or finished (seen_at NULL), starts anew.
CREATE TABLE IF NOT EXISTS rollup_backfills (
  from_hour  timestamptz NOT NULL,
  to_hour    timestamptz NOT NULL,
  started_at timestamptz NOT NULL,
  seen_at    timestamptz,
  PRIMARY KEY (from_hour, to_hour)
);
