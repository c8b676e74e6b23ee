//! The clock that maps the core's instants to tokio's, shared by value by
//! the driver (which sleeps until the core's deadlines) and
//! [`crate::Memberlist::create`] (which starts the core at its zero).

use std::time::Duration;

use headcount_proto::Instant;

/// The clock: core instants are microseconds since `base`.
#[derive(Clone, Copy)]
pub(crate) struct Clock {
    base: tokio::time::Instant,
}

impl Clock {
    /// A clock whose zero is now.
    pub(crate) fn start() -> Self {
        Clock {
            base: tokio::time::Instant::now(),
        }
    }

    /// The core instant of now (saturating, which takes half a million
    /// years).
    pub(crate) fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    /// The tokio instant of core instant `i`, for sleeping until it.
    pub(crate) fn to_tokio(self, i: Instant) -> tokio::time::Instant {
        self.base + Duration::from_micros(i.as_micros())
    }
}
