//! Optimistic read-modify-write: read, decide, and commit on the condition
//! that what was read has not changed; read again when it has.

use std::future::Future;

use super::error::StoreError;

/// Attempts of an optimistic read-modify-write before it gives up with
/// [`StoreError::Contention`]: each failed one lost a race to a write that
/// committed, so the writers of one item make progress.
pub(super) const ATTEMPTS: usize = 5;

/// What one attempt came to.
pub(super) enum Attempt<T, S> {
    /// Done: committed, or decided without writing.
    Done(T),
    /// What it read changed before it committed: read again, knowing `S`.
    Again(S),
}

/// Runs `attempt` from `state` until it is done, each time with the state the
/// previous one left; [`StoreError::Contention`] after [`ATTEMPTS`].
pub(super) async fn optimistic<T, S, F, Fut>(mut state: S, mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut(S) -> Fut,
    Fut: Future<Output = Result<Attempt<T, S>, StoreError>>,
{
    for _ in 0..ATTEMPTS {
        match attempt(state).await? {
            Attempt::Done(done) => return Ok(done),
            Attempt::Again(next) => state = next,
        }
    }
    Err(StoreError::Contention)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_again_until_done_and_gives_up_after_its_attempts() {
        // GIVEN an attempt that loses its race twice
        let done = optimistic(0, |lost| async move {
            Ok(match lost {
                2 => Attempt::Done(lost),
                _ => Attempt::Again(lost + 1),
            })
        })
        .await;
        // THEN the third one is done, with the state the others left
        assert_eq!(done.unwrap(), 2);
        // AND one that always loses gives up after ATTEMPTS
        let mut tries = 0;
        let never: Result<(), _> = optimistic((), |()| {
            tries += 1;
            async { Ok(Attempt::Again(())) }
        })
        .await;
        assert!(matches!(never, Err(StoreError::Contention)));
        assert_eq!(tries, ATTEMPTS);
    }
}
