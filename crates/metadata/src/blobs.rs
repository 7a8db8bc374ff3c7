//! Blob rows' lifecycle: references, upload pins, collector claims. One set of `$N` queries that
//! both repos run (the protocol is described in `imgd_core::service::gc`). Every transition is a
//! single statement on the blob row, so the database's row lock orders a pin, a reference and a
//! claim of the same blob whatever the nodes' locks do. [`crate::repo`] runs them.

use imgd_core::Error;

/// The rows a collector may claim, with `$2` now, `$3` the orphan cutoff, `$4` 1 for "never
/// referenced only" (else 0) and `$5` the stale-claim cutoff: no reference, and either live,
/// unpinned and orphaned long enough, or `deleting` under a claim older than the cutoff.
macro_rules! claimable {
    () => {
        "refcount = 0 AND (
           (state = 'live' AND coalesce(pinned_until, 0) < $2
            AND coalesce(orphaned_at, created_at) <= $3 AND ($4 = 0 OR orphaned_at IS NULL))
           OR (state = 'deleting' AND claimed_at < $5))"
    };
}

/// Pins a blob (`$1` hash, `$2` size, `$3` now, `$4` pinned until, `$5` generation of a new
/// row): creates the row, or adds a pin to it unless it is `deleting`. Returns the row's
/// generation; no row when it is `deleting`. The size is written again: a row adopted from
/// variants alone did not know it.
pub(crate) const PIN: &str =
    "INSERT INTO blobs (hash, size, refcount, created_at, generation, pins, pinned_until)
     VALUES ($1, $2, 0, $3, $5, 1, $4)
     ON CONFLICT (hash) DO UPDATE SET pins = blobs.pins + 1, size = excluded.size,
       pinned_until = CASE WHEN coalesce(blobs.pinned_until, 0) > excluded.pinned_until
                           THEN blobs.pinned_until ELSE excluded.pinned_until END
     WHERE blobs.state <> 'deleting'
     RETURNING generation";

/// Records bytes the store holds without a row (`$1` hash, `$2` size, `$3` orphaned at and
/// created at, `$4` generation): unreferenced and unpinned, so collectable once `$3` is past the
/// grace period. Never touches an existing row.
pub(crate) const ADOPT: &str =
    "INSERT INTO blobs (hash, size, refcount, created_at, generation, orphaned_at)
     VALUES ($1, $2, 0, $3, $4, $3)
     ON CONFLICT (hash) DO NOTHING";

/// Recorded hashes from `$1` to `$3` (both included) after `$2`, ascending, at most `$4`.
pub(crate) const KNOWN: &str =
    "SELECT hash FROM blobs WHERE hash >= $1 AND hash > $2 AND hash <= $3
     ORDER BY hash LIMIT $4";

/// Drops one pin of generation `$2`; the last one clears the protection at once.
macro_rules! unpin {
    () => {
        "pins = CASE WHEN pins > 0 THEN pins - 1 ELSE 0 END,
         pinned_until = CASE WHEN pins <= 1 THEN NULL ELSE pinned_until END"
    };
}

/// Gives back a pin (`$1` hash, `$2` generation) without taking a reference.
pub(crate) const RELEASE_PIN: &str = concat!(
    "UPDATE blobs SET ",
    unpin!(),
    " WHERE hash = $1 AND generation = $2 AND state = 'live'"
);

/// Takes a reference through a pin (`$1` hash, `$2` generation): one row updated, or none if the
/// row was claimed or is another incarnation.
pub(crate) const TAKE_REFERENCE: &str = concat!(
    "UPDATE blobs SET refcount = refcount + 1, orphaned_at = NULL, ",
    unpin!(),
    " WHERE hash = $1 AND generation = $2 AND state = 'live'"
);

/// Drops a reference (`$1` hash, `$2` now), stamping the blob orphaned when it was the last.
pub(crate) const DROP_REFERENCE: &str = "UPDATE blobs SET refcount = refcount - 1,
       orphaned_at = CASE WHEN refcount = 1 THEN $2 ELSE orphaned_at END
     WHERE hash = $1 RETURNING refcount";

/// Up to `$6` claimable rows by hash after `$1` (see [`claimable!`] for `$2`-`$5`).
pub(crate) const ORPHANS: &str = concat!(
    "SELECT hash, size, state FROM blobs WHERE hash > $1 AND ",
    claimable!(),
    " ORDER BY hash LIMIT $6"
);

/// Claims one row (`$1` hash, `$6` token; see [`claimable!`] for `$2`-`$5`) in one statement:
/// the database serialises it against a concurrent pin or reference on the same row.
pub(crate) const CLAIM: &str = concat!(
    "UPDATE blobs SET state = 'deleting', claimed_at = $2, claim_token = $6 WHERE hash = $1 AND ",
    claimable!(),
    " RETURNING size"
);

/// Forgets a collected blob (`$1` hash, `$2` claim token), if the claim is still this one.
pub(crate) const FORGET_BLOB: &str =
    "DELETE FROM blobs WHERE hash = $1 AND state = 'deleting' AND claim_token = $2";

/// Forgets a collected blob's variants (`$1` hash).
pub(crate) const FORGET_VARIANTS: &str = "DELETE FROM variants WHERE source_hash = $1";

/// The answer when a pinned blob was claimed (or collected and created again) before the
/// upload committed: nothing is recorded, and the client may retry.
pub(crate) fn collected() -> Error {
    Error::Unavailable("the blob was collected before the upload committed; retry".into())
}
