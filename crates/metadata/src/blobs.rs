//! Blob rows' lifecycle: references, upload pins, collector claims. One set of `$N` queries that
//! both repos run (the protocol is described in `imgd_core::service::gc`). Every transition is a
//! single statement on the blob row, so the database's row lock orders a pin, a reference and a
//! claim of the same blob whatever the nodes' locks do.

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
/// generation; no row when it is `deleting`.
pub(crate) const PIN: &str =
    "INSERT INTO blobs (hash, size, refcount, created_at, generation, pins, pinned_until)
     VALUES ($1, $2, 0, $3, $5, 1, $4)
     ON CONFLICT (hash) DO UPDATE SET pins = blobs.pins + 1,
       pinned_until = CASE WHEN coalesce(blobs.pinned_until, 0) > excluded.pinned_until
                           THEN blobs.pinned_until ELSE excluded.pinned_until END
     WHERE blobs.state <> 'deleting'
     RETURNING generation";

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

/// Expands to the blob-lifecycle methods of `$repo` (a repo with a `pool` field), each running
/// one of the queries above: written once, run by both engines. The invoking module provides
/// `db(sqlx::Error) -> Error`, `Row` and the model types; its `MetadataRepo` impl delegates.
macro_rules! impl_blob_queries {
    ($repo:ty) => {
        impl $repo {
            pub(crate) async fn pin_blob_query(
                &self,
                hash: &ContentHash,
                size: u64,
                now: i64,
                until: i64,
                generation: i64,
            ) -> Result<PinOutcome> {
                let row = sqlx::query(blobs::PIN)
                    .bind(hash.as_str())
                    .bind(size as i64)
                    .bind(now)
                    .bind(until)
                    .bind(generation)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)?;
                Ok(match row {
                    Some(row) => PinOutcome::Pinned(BlobPin {
                        hash: hash.clone(),
                        generation: row.get("generation"),
                    }),
                    None => PinOutcome::Deleting,
                })
            }

            pub(crate) async fn release_pin_query(&self, pin: &BlobPin) -> Result<()> {
                sqlx::query(blobs::RELEASE_PIN)
                    .bind(pin.hash.as_str())
                    .bind(pin.generation)
                    .execute(&self.pool)
                    .await
                    .map_err(db)?;
                Ok(())
            }

            pub(crate) async fn orphans_query(
                &self,
                rule: &ClaimRule,
                after: Option<&ContentHash>,
                limit: u32,
            ) -> Result<Vec<OrphanBlob>> {
                let rows = sqlx::query(blobs::ORPHANS)
                    .bind(after.map_or("", |h| h.as_str()))
                    .bind(rule.now)
                    .bind(rule.orphaned_before)
                    .bind(i64::from(rule.never_referenced))
                    .bind(rule.stale_claim_before)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db)?;
                rows.iter()
                    .map(|row| {
                        Ok(OrphanBlob {
                            hash: ContentHash::parse(row.get("hash"))?,
                            size: row.get::<i64, _>("size") as u64,
                            stale_claim: row.get::<&str, _>("state") == "deleting",
                        })
                    })
                    .collect()
            }

            pub(crate) async fn claim_orphan_query(
                &self,
                hash: &ContentHash,
                rule: &ClaimRule,
                token: i64,
            ) -> Result<Option<BlobClaim>> {
                let row = sqlx::query(blobs::CLAIM)
                    .bind(hash.as_str())
                    .bind(rule.now)
                    .bind(rule.orphaned_before)
                    .bind(i64::from(rule.never_referenced))
                    .bind(rule.stale_claim_before)
                    .bind(token)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)?;
                Ok(row.map(|row| BlobClaim {
                    hash: hash.clone(),
                    size: row.get::<i64, _>("size") as u64,
                    token,
                }))
            }

            pub(crate) async fn finish_collect_query(&self, claim: &BlobClaim) -> Result<bool> {
                let mut tx = self.pool.begin().await.map_err(db)?;
                let forgotten = sqlx::query(blobs::FORGET_BLOB)
                    .bind(claim.hash.as_str())
                    .bind(claim.token)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                if forgotten.rows_affected() != 1 {
                    return Ok(false);
                }
                sqlx::query(blobs::FORGET_VARIANTS)
                    .bind(claim.hash.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                tx.commit().await.map_err(db)?;
                Ok(true)
            }
        }
    };
}
pub(crate) use impl_blob_queries;
