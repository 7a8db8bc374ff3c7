//! `imgd sign`: a signed delivery URL from a tenant's signing secret, without a server, for
//! scripts and for checking what an application's own signer should produce.

use anyhow::{Context, Result, bail};
use imgd_core::model::now_millis;
use imgd_core::service::signing;

use crate::cli::SignArgs;

/// Prints the signed URL.
pub fn run(args: &SignArgs) -> Result<()> {
    if !args.path.starts_with("/i/") || args.path.contains('?') {
        bail!("--path must be /i/{{id}} or /i/{{id}}/{{options}}, without a query");
    }
    let secret = hex::decode(args.secret.trim()).context("--secret must be hex")?;
    let expires_at = (now_millis() / 1000).max(0) as u64 + args.expires_in;
    println!(
        "{}{}",
        args.base_url.trim_end_matches('/'),
        signing::sign(&args.path, expires_at, &secret)
    );
    Ok(())
}
