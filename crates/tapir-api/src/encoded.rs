//! Events encoded once for every WebSocket session.
//!
//! With many subscribers, turning each event into JSON per session costs more than
//! everything else the server does; sessions share the text of recent events instead, found
//! by sequence number.

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::extract::ws::Utf8Bytes;
use tapir_core::Sequenced;
use tapir_wire::ServerMessage;

use crate::convert;

/// How many recent events keep their text; sessions further behind encode their own.
const KEPT: usize = 8192;

/// The JSON text of recent events, oldest first.
#[derive(Default)]
pub(crate) struct EncodedEvents {
    recent: Mutex<VecDeque<(u64, Utf8Bytes)>>,
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
    let message = ServerMessage::Event(Box::new(convert::sequenced(event)));
    serde_json::to_string(&message)
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
