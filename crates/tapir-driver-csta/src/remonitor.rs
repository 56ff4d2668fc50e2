//! When to ask the switch again for the monitor of a device that has none (refused at
//! synchronisation, or ended by the switch since): each device with its own back-off between
//! the link's `reconnect_min_ms` and `reconnect_max_ms`, so that a device the switch always
//! refuses does not hold the others back.

use std::collections::HashMap;
use std::time::Duration;

use tapir_provider::backoff::Backoff;
use tokio::time::Instant;

use crate::config::CstaConfig;

/// The devices waiting to be monitored again, with their back-off and next attempt.
pub struct Remonitor {
    min: Duration,
    max: Duration,
    waiting: HashMap<String, (Backoff, Instant)>,
}

impl Remonitor {
    pub fn new(config: &CstaConfig) -> Remonitor {
        Remonitor {
            min: Duration::from_millis(config.reconnect_min_ms),
            max: Duration::from_millis(config.reconnect_max_ms),
            waiting: HashMap::new(),
        }
    }

    /// Whether `device` (without a monitor) is to be asked for now; a device newly without
    /// one first waits one back-off step.
    pub fn due(&mut self, device: &str) -> bool {
        let now = Instant::now();
        let (min, max) = (self.min, self.max);
        let (_, next) = self.waiting.entry(device.to_owned()).or_insert_with(|| {
            let mut backoff = Backoff::new(min, max);
            let first = now + backoff.next_delay();
            (backoff, first)
        });
        now >= *next
    }

    /// The switch refused (or did not answer) `device`'s MonitorStart.
    pub fn refused(&mut self, device: &str) {
        if let Some((backoff, next)) = self.waiting.get_mut(device) {
            *next = Instant::now() + backoff.next_delay();
        }
    }

    pub fn monitored(&mut self, device: &str) {
        self.waiting.remove(device);
    }
}
