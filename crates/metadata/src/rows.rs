//! What the SQLite and PostgreSQL repos share: error translation and the mapping from a row to a
//! record. The schemas have the same column names and compatible types (TEXT, 64-bit integers),
//! so one generic function per record serves both; only the SQL placeholders differ.

use imgd_core::format::ImageFormat;
use imgd_core::id::{ContentHash, ImageId, TenantId, VariantKey};
use imgd_core::model::{Cursor, ImageRecord, VariantRecord};
use imgd_core::{Error, Result};
use sqlx::{ColumnIndex, Decode, Row, Type};

/// The columns of `images`, in insert order.
pub(crate) const IMAGE_COLUMNS: &str = "id, tenant_id, blob_hash, format, width, height, bytes, frames, filename, blurhash, tags, metadata, created_at";

/// Translates sqlx errors: connection trouble is "unavailable", the rest is a bug.
pub(crate) fn db_error(engine: &str, e: sqlx::Error) -> Error {
    let unreachable = match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::Io(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| server_unavailable(&c)),
        _ => false,
    };
    if unreachable {
        Error::Unavailable(format!("{engine}: {e}"))
    } else {
        Error::Internal(format!("{engine}: {e}"))
    }
}

/// SQLSTATEs that mean "the server cannot serve you now" rather than "this query is wrong":
/// connection exceptions (08), shutdown or not accepting connections (57P01-57P03, and 55000 for
/// a database closed to connections), too many connections (53300), and SQLite's busy/locked.
fn server_unavailable(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "55000" | "53300" | "5" | "6"
        )
}

fn format_from_db(name: &str) -> Result<ImageFormat> {
    ImageFormat::from_name(name).ok_or_else(|| Error::internal(format!("unknown format {name}")))
}

/// An `images` row as a record.
pub(crate) fn image_from_row<'r, R>(row: &'r R) -> Result<ImageRecord>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let format: String = row.get("format");
    let tags: String = row.get("tags");
    let metadata: String = row.get("metadata");
    Ok(ImageRecord {
        id: ImageId::parse(&row.get::<String, _>("id"))
            .map_err(|_| Error::internal("malformed image id in database"))?,
        tenant: TenantId::new(row.get::<String, _>("tenant_id")),
        hash: ContentHash::parse(&row.get::<String, _>("blob_hash"))?,
        format: format_from_db(&format)?,
        width: row.get::<i64, _>("width") as u32,
        height: row.get::<i64, _>("height") as u32,
        bytes: row.get::<i64, _>("bytes") as u64,
        frames: row.get::<i64, _>("frames") as u32,
        filename: row.get("filename"),
        blurhash: row.get("blurhash"),
        tags: serde_json::from_str(&tags).map_err(Error::internal)?,
        metadata: serde_json::from_str(&metadata).map_err(Error::internal)?,
        created_at: row.get("created_at"),
    })
}

/// A `variants` row as a record.
pub(crate) fn variant_from_row<'r, R>(row: &'r R) -> Result<VariantRecord>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(VariantRecord {
        key: VariantKey::from_stored(row.get("key")),
        source: ContentHash::parse(&row.get::<String, _>("source_hash"))?,
        format: format_from_db(&row.get::<String, _>("format"))?,
        bytes: row.get::<i64, _>("bytes") as u64,
        etag: row.get("etag"),
        created_at: row.get("created_at"),
    })
}

/// Every tenant's image ids from a time on, oldest first, keyset-paged (`$N` placeholders, which
/// SQLite accepts too). Served by the `images_by_created` index.
pub(crate) const IMAGE_IDS_SINCE: &str = "SELECT id, created_at FROM images
     WHERE created_at >= $1
       AND ($2 IS NULL OR created_at > $2 OR (created_at = $2 AND id > $3))
     ORDER BY created_at, id
     LIMIT $4";

/// An `(id, created_at)` row as a listing cursor.
pub(crate) fn cursor_from_row<'r, R>(row: &'r R) -> Result<Cursor>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(Cursor {
        id: ImageId::parse(&row.get::<String, _>("id"))
            .map_err(|_| Error::internal("malformed image id in database"))?,
        created_at: row.get("created_at"),
    })
}
