//! Waiting for a condition with a deadline, instead of sleeping and hoping.
//!
//! [`until`] is for async tests; [`until_blocking`] for the harness's blocking set-up code.

use std::future::Future;
use std::time::Duration;

use anyhow::{bail, Result};

/// How often [`until`] re-checks its condition.
const POLL: Duration = Duration::from_millis(20);

/// Re-evaluates `check` until it yields `Some`, failing with `what` after `within`.
pub async fn until<T, F, Fut>(what: &str, within: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Like [`until`], for blocking code: re-evaluates `check` until it yields `Some`, failing with
/// `what` after `within`.
pub fn until_blocking<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if std::time::Instant::now() >= deadline {
            bail!("timed out after {within:?} waiting for {what}");
        }
        std::thread::sleep(POLL);
    }
}
