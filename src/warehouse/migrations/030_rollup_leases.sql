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
