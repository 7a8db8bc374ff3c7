//! HTTP conditional and range requests for delivery (RFC 9110 sections 13 and 14).

use axum::http::HeaderMap;
use axum::http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, RANGE};
use imgd_core::model::Millis;
use imgd_core::port::ByteRange;

/// What a `Range` header asks of a representation of `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeOutcome {
    /// No (usable) range: send everything with 200.
    Full,
    /// Send this range with 206.
    Partial(ByteRange),
    /// The range lies outside the representation: 416.
    Unsatisfiable,
}

fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

fn seconds(ms: Millis) -> i64 {
    ms.div_euclid(1000)
}

fn header_date(headers: &HeaderMap, name: axum::http::HeaderName) -> Option<i64> {
    let value = headers.get(name)?.to_str().ok()?;
    let time = httpdate::parse_http_date(value).ok()?;
    Some(time.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64)
}

/// True when the client's copy is current: `If-None-Match` (weak comparison, `*` matches), or,
/// only when that header is absent, `If-Modified-Since`.
pub fn not_modified(headers: &HeaderMap, etag: &str, last_modified: Millis) -> bool {
    if let Some(value) = headers.get(IF_NONE_MATCH) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        let ours = quoted(etag);
        return value
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours);
    }
    header_date(headers, IF_MODIFIED_SINCE).is_some_and(|since| seconds(last_modified) <= since)
}

/// Interprets `Range` (one range only; a multi-range request gets the whole body, which RFC
/// 9110 allows) guarded by `If-Range`.
pub fn range(headers: &HeaderMap, len: u64, etag: &str, last_modified: Millis) -> RangeOutcome {
    let Some(spec) = headers.get(RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeOutcome::Full;
    };
    if let Some(if_range) = headers.get(IF_RANGE).and_then(|v| v.to_str().ok()) {
        let current = if if_range.starts_with('"') {
            if_range == quoted(etag)
        } else {
            header_date(headers, IF_RANGE) == Some(seconds(last_modified))
        };
        if !current {
            return RangeOutcome::Full;
        }
    }
    let Some(set) = spec.trim().strip_prefix("bytes=") else {
        return RangeOutcome::Full;
    };
    if set.contains(',') {
        return RangeOutcome::Full;
    }
    let Some((first, last)) = set.trim().split_once('-') else {
        return RangeOutcome::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match last.parse::<u64>() {
            Ok(0) => return RangeOutcome::Unsatisfiable,
            Ok(n) if len > 0 => Some((len.saturating_sub(n), len - 1)),
            Ok(_) => return RangeOutcome::Unsatisfiable,
            Err(_) => None,
        },
        // bytes=N-: from N to the end.
        (false, true) => first
            .parse::<u64>()
            .ok()
            .map(|start| (start, len.saturating_sub(1))),
        (false, false) => match (first.parse::<u64>(), last.parse::<u64>()) {
            (Ok(start), Ok(end)) if start <= end => Some((start, end.min(len.saturating_sub(1)))),
            _ => None,
        },
        (true, true) => None,
    };
    match parsed {
        None => RangeOutcome::Full,
        Some((start, _)) if start >= len => RangeOutcome::Unsatisfiable,
        Some((start, end)) => RangeOutcome::Partial(ByteRange { start, end }),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn r(pairs: &[(&'static str, &str)]) -> RangeOutcome {
        range(&headers(pairs), 1000, "abc", 1_700_000_000_000)
    }

    #[test]
    fn ranges() {
        let part = |start, end| RangeOutcome::Partial(ByteRange { start, end });
        assert_eq!(r(&[]), RangeOutcome::Full);
        assert_eq!(r(&[("range", "bytes=0-99")]), part(0, 99));
        assert_eq!(r(&[("range", "bytes=900-")]), part(900, 999));
        assert_eq!(r(&[("range", "bytes=-100")]), part(900, 999));
        assert_eq!(r(&[("range", "bytes=-5000")]), part(0, 999));
        assert_eq!(r(&[("range", "bytes=990-5000")]), part(990, 999));
        assert_eq!(r(&[("range", "bytes=1000-")]), RangeOutcome::Unsatisfiable);
        assert_eq!(r(&[("range", "bytes=-0")]), RangeOutcome::Unsatisfiable);
        assert_eq!(r(&[("range", "bytes=5-1")]), RangeOutcome::Full);
        assert_eq!(r(&[("range", "bytes=0-1,5-6")]), RangeOutcome::Full);
        assert_eq!(r(&[("range", "items=0-1")]), RangeOutcome::Full);
        assert_eq!(
            r(&[("range", "bytes=0-9"), ("if-range", "\"abc\"")]),
            part(0, 9)
        );
        assert_eq!(
            r(&[("range", "bytes=0-9"), ("if-range", "\"old\"")]),
            RangeOutcome::Full
        );
    }

    #[test]
    fn conditionals() {
        let lm = 1_700_000_000_000;
        assert!(not_modified(
            &headers(&[("if-none-match", "\"abc\"")]),
            "abc",
            lm
        ));
        assert!(not_modified(
            &headers(&[("if-none-match", "\"x\", W/\"abc\"")]),
            "abc",
            lm
        ));
        assert!(not_modified(&headers(&[("if-none-match", "*")]), "abc", lm));
        assert!(!not_modified(
            &headers(&[("if-none-match", "\"x\"")]),
            "abc",
            lm
        ));
        let later = httpdate::fmt_http_date(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_100),
        );
        let earlier = httpdate::fmt_http_date(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_699_999_000),
        );
        assert!(not_modified(
            &headers(&[("if-modified-since", &later)]),
            "abc",
            lm
        ));
        assert!(!not_modified(
            &headers(&[("if-modified-since", &earlier)]),
            "abc",
            lm
        ));
        // If-None-Match wins over If-Modified-Since.
        assert!(!not_modified(
            &headers(&[("if-none-match", "\"x\""), ("if-modified-since", &later)]),
            "abc",
            lm
        ));
    }
}
