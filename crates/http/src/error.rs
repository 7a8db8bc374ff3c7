//! The edge's one error mapping: domain error to its code, the code's status (from the one table
//! in `imgd_core::code`) and the JSON body `{"code": ..., "message": ...}`. 5xx bodies say
//! nothing internal; the cause is logged.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use imgd_core::{Code, Error};
use serde::Serialize;

/// A domain error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

/// The JSON error body.
#[derive(Serialize)]
pub struct ErrorBody<'a> {
    pub code: &'a str,
    pub message: String,
}

/// The status for each domain error: its code's row in [`imgd_core::code`].
pub fn status_of(e: &Error) -> StatusCode {
    status_of_code(e.code())
}

fn status_of_code(code: Code) -> StatusCode {
    StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A JSON error response with `code`'s status (for errors born in the adapter).
pub fn error_response(code: Code, message: String) -> Response {
    let body = ErrorBody {
        code: code.as_str(),
        message,
    };
    (status_of_code(code), axum::Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        let message = if status.is_server_error()
            && !matches!(
                self.0,
                Error::Overloaded { .. } | Error::RenderTimeout | Error::Cancelled
            ) {
            tracing::error!(error = %self.0, code = %self.0.code(), "request failed");
            match &self.0 {
                Error::Unavailable(_) => "a backend is unavailable, retry later".to_owned(),
                _ => "internal error".to_owned(),
            }
        } else {
            self.0.to_string()
        };
        let mut response = error_response(self.0.code(), message);
        let headers = response.headers_mut();
        match &self.0 {
            Error::Overloaded { retry_after } | Error::RateLimited { retry_after } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after.as_millis().div_ceil(1000).max(1) as u64),
                );
            }
            Error::RenderTimeout | Error::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            Error::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes are a public contract: this snapshot changes only on purpose.
    #[test]
    fn every_error_has_a_stable_status_and_code() {
        let cases: Vec<(Error, u16, &str)> = vec![
            (Error::NotFound("image"), 404, "not_found"),
            (
                Error::invalid(Code::InvalidOption, "x"),
                400,
                "invalid_option",
            ),
            (
                Error::PayloadTooLarge { limit: 1 },
                413,
                "payload_too_large",
            ),
            (
                Error::UnsupportedFormat("x".into()),
                415,
                "unsupported_format",
            ),
            (
                Error::TooManyPixels {
                    pixels: 2,
                    limit: 1,
                },
                422,
                "too_many_pixels",
            ),
            (
                Error::TooManyFrames {
                    frames: 2,
                    limit: 1,
                },
                422,
                "too_many_frames",
            ),
            (Error::CorruptImage("x".into()), 422, "corrupt_image"),
            (
                Error::TooLargeToProcess {
                    needed_mib: 2,
                    budget_mib: 1,
                },
                422,
                "image_too_large",
            ),
            (Error::Cancelled, 503, "cancelled"),
            (Error::Unauthorized, 401, "unauthorized"),
            (Error::Forbidden, 403, "forbidden"),
            (
                Error::PreconditionFailed("x".into()),
                412,
                "precondition_failed",
            ),
            (
                Error::Overloaded {
                    retry_after: std::time::Duration::from_secs(1),
                },
                503,
                "overloaded",
            ),
            (
                Error::RateLimited {
                    retry_after: std::time::Duration::from_millis(1500),
                },
                429,
                "rate_limited",
            ),
            (Error::RenderTimeout, 503, "render_timeout"),
            (Error::RenderFailed, 500, "render_failed"),
            (Error::Unavailable("db".into()), 503, "unavailable"),
            (Error::Internal("secret detail".into()), 500, "internal"),
        ];
        for (error, status, code) in cases {
            assert_eq!(status_of(&error).as_u16(), status, "{error:?}");
            assert_eq!(error.code(), code);
        }
    }

    /// The README's table of error codes is this table, row for row: a code added, renamed or
    /// re-statused here fails until the README says so (the expected table is printed).
    #[test]
    fn the_readme_lists_every_code() {
        let readme = include_str!("../../../README.md");
        let (start, end) = ("<!-- error-codes -->\n", "<!-- /error-codes -->");
        let table = readme
            .split_once(start)
            .and_then(|(_, rest)| rest.split_once(end))
            .map(|(table, _)| table)
            .expect("README marks its error table with <!-- error-codes --> comments");
        let mut expected = String::from("| code | status | meaning |\n|---|---|---|\n");
        for code in Code::ALL.iter().filter(|c| !c.is_startup()) {
            expected.push_str(&format!(
                "| `{code}` | {} | {} |\n",
                code.status(),
                code.meaning()
            ));
        }
        assert!(
            table == expected,
            "the README's error table should be:\n{expected}"
        );
    }
}
