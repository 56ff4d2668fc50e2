//! Any bytes from Kamailio's evapi socket, in arbitrary pieces: netstring frames (or skipped
//! ones) and every frame's JSON read into an event or a typed error, never a panic, and the
//! reader never holds more than one frame's worth.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapir_driver_sip::evapi::{Frame, NetstringReader, parse_event};

/// Small, so that oversized frames and their skipping are reached often.
const MAX: usize = 64;

fuzz_target!(|data: &[u8]| {
    let mut reader = NetstringReader::new(MAX);
    // The first byte picks the piece size, so that splits land everywhere.
    let piece = usize::from(data.first().copied().unwrap_or(1)).max(1);
    for chunk in data.chunks(piece) {
        reader.push(chunk);
        while let Some(frame) = reader.next_frame() {
            if let Frame::Payload(payload) = frame {
                assert!(payload.len() <= MAX);
                let _ = parse_event(&payload);
            }
        }
    }
});
