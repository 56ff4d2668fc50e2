//! Failed logins are limited per user name and per client address, so that guessing
//! passwords is slow while a user who mistyped once is not locked out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures allowed within [`WINDOW`] before logins are refused.
pub const FAILURES_ALLOWED: u32 = 5;
/// How long failures are remembered, and how long a limited key must wait.
pub const WINDOW: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    first: Instant,
}

/// Counts failures; the caller supplies the clock so that tests need no sleeping.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: HashMap<Key, Failures>,
}

impl LoginLimiter {
    /// `Err(wait)` when `user` or `address` failed too often lately.
    pub fn check(
        &mut self,
        user: &str,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Duration> {
        self.forget_old(now);
        let wait = keys(user, address)
            .filter_map(|key| self.failures.get(&key))
            .filter(|f| f.count >= FAILURES_ALLOWED)
            .map(|f| WINDOW.saturating_sub(now.duration_since(f.first)))
            .max();
        wait.map_or(Ok(()), Err)
    }

    pub fn failed(&mut self, user: &str, address: Option<IpAddr>, now: Instant) {
        for key in keys(user, address) {
            let entry = self.failures.entry(key).or_insert(Failures {
                count: 0,
                first: now,
            });
            entry.count += 1;
        }
    }

    /// A good login clears the user's failures (not the address's: one good account must
    /// not unlock guessing at others).
    pub fn succeeded(&mut self, user: &str) {
        self.failures.remove(&Key::User(user.to_lowercase()));
    }

    fn forget_old(&mut self, now: Instant) {
        self.failures
            .retain(|_, f| now.duration_since(f.first) < WINDOW);
    }
}

fn keys(user: &str, address: Option<IpAddr>) -> impl Iterator<Item = Key> {
    std::iter::once(Key::User(user.to_lowercase())).chain(address.map(Key::Address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_limited_after_repeated_failures_until_the_window_passes() {
        let mut limiter = LoginLimiter::default();
        let start = Instant::now();
        for _ in 0..FAILURES_ALLOWED {
            assert!(limiter.check("Alice", None, start).is_ok());
            limiter.failed("Alice", None, start);
        }
        let wait = limiter.check("alice", None, start).unwrap_err();
        assert_eq!(wait, WINDOW);
        assert!(limiter.check("bob", None, start).is_ok());
        assert!(limiter.check("alice", None, start + WINDOW).is_ok());
    }

    #[test]
    fn an_address_that_guesses_many_names_is_limited() {
        let mut limiter = LoginLimiter::default();
        let now = Instant::now();
        let address: IpAddr = "192.0.2.7".parse().unwrap();
        for n in 0..FAILURES_ALLOWED {
            limiter.failed(&format!("user{n}"), Some(address), now);
        }
        assert!(limiter.check("someone-else", Some(address), now).is_err());
        assert!(limiter.check("someone-else", None, now).is_ok());
        limiter.succeeded("user0");
        assert!(limiter.check("user1", Some(address), now).is_err());
    }
}
