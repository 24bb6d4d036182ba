//! Management writes decided on a read: the one retry of a judgement that
//! the store found stale.
//!
//! The service judges a change (the bounds of [`super::bounds`]) on records
//! it read, then writes in a separate store call that expects exactly what
//! was judged (a key's or an account's version, an application's status
//! and key versions). When something changed in between, the store writes
//! nothing and answers [`StoreError::Conflict`](crate::store::StoreError::Conflict);
//! the operation then reads again and judges the new state, a few times,
//! before it answers [`Error::Conflict`] (409). A weaker actor therefore
//! never disarms a key that became stronger after it looked.

use std::future::Future;

use crate::error::{Error, Result};

/// Attempts of one judged write (the first one and two re-judgements).
pub(crate) const ATTEMPTS: usize = 3;

/// Runs `attempt` (read, judge, conditional write) until it does not end
/// in [`Error::Conflict`], at most [`ATTEMPTS`] times; the last answer is
/// returned as it is.
///
/// # Errors
/// Whatever the last attempt returned.
pub(crate) async fn rejudged<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut left = ATTEMPTS;
    loop {
        left -= 1;
        match attempt().await {
            Err(Error::Conflict(what)) if left > 0 => {
                tracing::debug!(target: "keyward::management", what, "stale judgement, reading again");
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn retries_conflicts_only_and_at_most_attempts_times() {
        let calls = AtomicUsize::new(0);
        let r: Result<()> = rejudged(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Error::Conflict("stale"))
        })
        .await;
        assert!(matches!(r, Err(Error::Conflict("stale"))));
        assert_eq!(calls.load(Ordering::SeqCst), ATTEMPTS);

        calls.store(0, Ordering::SeqCst);
        let r = rejudged(|| async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(Error::Conflict("stale")),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(r.unwrap(), 1);

        calls.store(0, Ordering::SeqCst);
        let r: Result<()> = rejudged(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Error::Protected)
        })
        .await;
        assert!(matches!(r, Err(Error::Protected)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
