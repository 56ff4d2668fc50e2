//! Events and snapshots encoded once for every WebSocket session.
//!
//! With many subscribers, turning each event into JSON per session costs more than
//! everything else the server does; sessions share the text of recent events instead, found
//! by sequence number, and the text of the latest full snapshot (a snapshot is identified by
//! its sequence number too).

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::extract::ws::Utf8Bytes;
use tapir_core::{Sequenced, Snapshot};
use tapir_wire::ServerMessage;

use crate::convert;

/// How many recent events keep their text; sessions further behind encode their own.
const KEPT: usize = 8192;

/// The JSON text of recent events, oldest first.
#[derive(Default)]
pub(crate) struct EncodedEvents {
    recent: Mutex<VecDeque<(u64, Utf8Bytes)>>,
    snapshot: Mutex<Option<(u64, Utf8Bytes)>>,
}

impl EncodedEvents {
    /// The `event` message for `event`, encoded by whichever session asked first.
    pub(crate) fn text(&self, event: &Sequenced) -> Utf8Bytes {
        if let Some(text) = self.find(event.seq) {
            return text;
        }
        let text = encode(event);
        let mut recent = self.lock();
        if recent.back().is_none_or(|(seq, _)| *seq < event.seq) {
            if recent.len() == KEPT {
                recent.pop_front();
            }
            recent.push_back((event.seq, text.clone()));
        }
        text
    }

    /// The `snapshot` message of the whole `snapshot` (no line filter).
    pub(crate) fn snapshot_text(&self, snapshot: &Snapshot) -> Utf8Bytes {
        // Held while encoding on purpose: sessions that subscribe together wait for the one
        // encoding instead of each making their own.
        let mut cached = match self.snapshot.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((seq, text)) = cached.as_ref()
            && *seq == snapshot.seq
        {
            return text.clone();
        }
        let message = ServerMessage::Snapshot(convert::snapshot(snapshot, None));
        let text: Utf8Bytes = to_text(&message);
        *cached = Some((snapshot.seq, text.clone()));
        text
    }

    fn find(&self, seq: u64) -> Option<Utf8Bytes> {
        let recent = self.lock();
        let index = recent.binary_search_by_key(&seq, |(s, _)| *s).ok()?;
        recent.get(index).map(|(_, text)| text.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, Utf8Bytes)>> {
        // Never held across an await; a poisoned lock still holds valid text.
        match self.recent.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

fn encode(event: &Sequenced) -> Utf8Bytes {
    to_text(&ServerMessage::Event(Box::new(convert::sequenced(event))))
}

fn to_text(message: &ServerMessage) -> Utf8Bytes {
    serde_json::to_string(message)
        .unwrap_or_else(|e| {
            format!(r#"{{"type":"error","error":{{"error":"internal","message":"{e}"}}}}"#)
        })
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapir_core::Event;
    use tapir_model::LineId;

    fn event(seq: u64) -> Sequenced {
        Sequenced {
            seq,
            at: 0,
            event: Event::LineRemoved {
                line: LineId(seq as u32),
                instance: "i".into(),
            },
        }
    }

    #[test]
    fn a_snapshot_is_encoded_once_per_sequence_number() {
        let cache = EncodedEvents::default();
        let snapshot = |seq| Snapshot {
            epoch: 1,
            seq,
            instances: vec![],
            lines: vec![],
            calls: vec![],
        };
        let first = cache.snapshot_text(&snapshot(5));
        assert!(
            first
                .as_str()
                .starts_with(r#"{"type":"snapshot","epoch":1,"seq":5"#),
            "{}",
            first.as_str()
        );
        let again = cache.snapshot_text(&snapshot(5));
        assert_eq!(
            first.as_str().as_ptr(),
            again.as_str().as_ptr(),
            "the same text is shared"
        );
        let later = cache.snapshot_text(&snapshot(6));
        assert!(later.as_str().contains(r#""seq":6"#));
    }

    #[test]
    fn each_event_is_encoded_once_and_found_again() {
        let cache = EncodedEvents::default();
        let first = cache.text(&event(1));
        let second = cache.text(&event(2));
        assert!(first.as_str().contains(r#""seq":1"#), "{}", first.as_str());
        assert_eq!(
            cache.find(1).map(|t| t.as_str().to_owned()),
            Some(first.as_str().to_owned())
        );
        assert_eq!(
            cache.find(2).map(|t| t.as_str().to_owned()),
            Some(second.as_str().to_owned())
        );
        // An older event asked for late is encoded but not cached out of order.
        let late = cache.text(&event(0));
        assert!(late.as_str().contains(r#""seq":0"#));
        assert!(cache.find(0).is_none());
    }
}
