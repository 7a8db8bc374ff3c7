//! JSON views of domain records: the shapes clients see.

use imgd_core::model::{ImageRecord, Millis, UserMetadata};
use serde::Serialize;

/// An image as the API returns it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ImageView {
    pub id: String,
    pub hash: String,
    pub format: &'static str,
    pub mime: &'static str,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub frames: u32,
    pub created_at: String,
    pub filename: Option<String>,
    pub blurhash: Option<String>,
    pub tags: Vec<String>,
    #[schema(value_type = Object)]
    pub metadata: UserMetadata,
    pub urls: Urls,
}

/// Where to fetch an image.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Urls {
    pub original: String,
    /// An example variant: a 400 px wide WebP.
    pub example_variant: String,
}

impl ImageView {
    /// The view of `image`, with URLs under `public_url`.
    pub fn new(image: &ImageRecord, public_url: &str) -> Self {
        let original = format!("{public_url}/i/{}", image.id);
        ImageView {
            id: image.id.to_string(),
            hash: image.hash.to_string(),
            format: image.format.name(),
            mime: image.format.mime(),
            width: image.width,
            height: image.height,
            bytes: image.bytes,
            frames: image.frames,
            created_at: rfc3339(image.created_at),
            filename: image.filename.clone(),
            blurhash: image.blurhash.clone(),
            tags: image.tags.clone(),
            metadata: image.metadata.clone(),
            urls: Urls {
                example_variant: format!("{original}/w=400,f=webp"),
                original,
            },
        }
    }
}

/// Formats Unix milliseconds as RFC 3339 UTC with millisecond precision.
pub fn rfc3339(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_795_392_000_000), "2026-11-23T00:00:00.000Z");
    }
}
