//! Sequence numbers, the bounded resume buffer, and the broadcast to subscribers.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::view::{Event, Sequenced};

/// Assigns each event its sequence number, keeps the last `capacity` for clients that resume,
/// and broadcasts it.
#[derive(Debug)]
pub(crate) struct Journal {
    seq: u64,
    buffer: VecDeque<Arc<Sequenced>>,
    capacity: usize,
    sender: broadcast::Sender<Arc<Sequenced>>,
}

impl Journal {
    pub(crate) fn new(capacity: usize, broadcast_capacity: usize) -> Journal {
        let (sender, _) = broadcast::channel(broadcast_capacity.max(1));
        Journal {
            seq: 0,
            buffer: VecDeque::with_capacity(capacity),
            capacity,
            sender,
        }
    }

    /// The sequence number of the last event.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    pub(crate) fn publish(&mut self, at: u64, event: Event) {
        self.seq += 1;
        let sequenced = Arc::new(Sequenced {
            seq: self.seq,
            at,
            event,
        });
        if self.capacity > 0 {
            if self.buffer.len() == self.capacity {
                self.buffer.pop_front();
            }
            self.buffer.push_back(sequenced.clone());
        }
        metrics::counter!("tapir_events_total").increment(1);
        // No receivers is fine: events are still journaled for clients that resume.
        let _ = self.sender.send(sequenced);
    }

    /// A receiver for every event after the current one.
    pub(crate) fn receiver(&self) -> broadcast::Receiver<Arc<Sequenced>> {
        self.sender.subscribe()
    }

    /// The events after `since`, if the buffer still holds all of them.
    pub(crate) fn since(&self, since: u64) -> Option<Vec<Arc<Sequenced>>> {
        if since > self.seq {
            return None;
        }
        if since == self.seq {
            return Some(Vec::new());
        }
        let oldest = self.buffer.front()?.seq;
        if since + 1 < oldest {
            return None;
        }
        Some(
            self.buffer
                .iter()
                .filter(|e| e.seq > since)
                .cloned()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapir_model::LineId;

    fn event(n: u32) -> Event {
        Event::LineRemoved {
            line: LineId(n),
            instance: "i".into(),
        }
    }

    #[test]
    fn resumes_from_the_buffer_and_refuses_what_fell_out() {
        let mut journal = Journal::new(3, 16);
        for n in 1..=5 {
            journal.publish(0, event(n));
        }
        assert_eq!(journal.seq(), 5);
        let seqs = |v: Vec<Arc<Sequenced>>| v.iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(journal.since(2).map(seqs), Some(vec![3, 4, 5]));
        assert_eq!(journal.since(4).map(seqs), Some(vec![5]));
        assert_eq!(journal.since(5).map(seqs), Some(vec![]));
        assert_eq!(journal.since(1), None, "event 2 is no longer buffered");
        assert_eq!(
            journal.since(9),
            None,
            "a future sequence number is not ours"
        );
    }

    #[test]
    fn receivers_get_events_after_they_subscribe() {
        let mut journal = Journal::new(8, 16);
        journal.publish(0, event(1));
        let mut rx = journal.receiver();
        journal.publish(0, event(2));
        assert_eq!(rx.try_recv().map(|e| e.seq).ok(), Some(2));
    }
}
