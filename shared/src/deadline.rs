//! A point in time by which a piece of work must be done, threaded through that
//! work: every step is bounded by the same instant, and a retry loop asks how much
//! time is left before it starts an attempt or a backoff sleep.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// The instant by which some work must be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Instant);

/// The deadline passed before the work finished (the work was dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the time budget ran out")]
pub struct Expired;

impl Deadline {
    /// `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Self(Instant::now() + budget)
    }

    /// At `instant`.
    pub fn at(instant: Instant) -> Self {
        Self(instant)
    }

    /// The instant itself.
    pub fn instant(self) -> Instant {
        self.0
    }

    /// The earlier of two deadlines.
    #[must_use]
    pub fn min(self, other: Self) -> Self {
        Ord::min(self, other)
    }

    /// Time left from now; zero once passed.
    pub fn remaining(self) -> Duration {
        self.remaining_at(Instant::now())
    }

    /// Time left from `now`; zero once passed.
    pub fn remaining_at(self, now: Instant) -> Duration {
        self.0.saturating_duration_since(now)
    }

    /// Whether the deadline has passed.
    pub fn is_expired(self) -> bool {
        self.remaining().is_zero()
    }

    /// Runs `work` until it finishes or the deadline passes, whichever comes first.
    /// Work that cannot start in time (the deadline already passed) is not polled.
    pub async fn run<F: Future>(self, work: F) -> Result<F::Output, Expired> {
        if self.is_expired() {
            return Err(Expired);
        }
        tokio::time::timeout_at(self.0, work)
            .await
            .map_err(|_| Expired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_counts_down_to_zero_and_stays_there() {
        let now = Instant::now();
        let deadline = Deadline::at(now + Duration::from_secs(20));
        assert_eq!(deadline.remaining_at(now), Duration::from_secs(20));
        assert_eq!(
            deadline.remaining_at(now + Duration::from_millis(19_250)),
            Duration::from_millis(750)
        );
        assert_eq!(
            deadline.remaining_at(now + Duration::from_secs(20)),
            Duration::ZERO
        );
        assert_eq!(
            deadline.remaining_at(now + Duration::from_secs(60)),
            Duration::ZERO
        );
    }

    #[test]
    fn min_is_the_earlier_deadline() {
        let now = Instant::now();
        let early = Deadline::at(now + Duration::from_secs(1));
        let late = Deadline::at(now + Duration::from_secs(2));
        assert_eq!(early.min(late), early);
        assert_eq!(late.min(early), early);
    }

    #[tokio::test]
    async fn run_bounds_work_by_the_deadline() {
        let deadline = Deadline::after(Duration::from_millis(50));
        assert_eq!(deadline.run(async { 7 }).await, Ok(7));
        let started = Instant::now();
        let never = deadline.run(std::future::pending::<()>()).await;
        assert_eq!(never, Err(Expired));
        assert!(started.elapsed() < Duration::from_secs(2));
        // Once passed, work is not even started.
        let mut polled = false;
        let late = deadline
            .run(async {
                polled = true;
            })
            .await;
        assert_eq!(late, Err(Expired));
        assert!(!polled);
    }
}
