//! Any bytes from a CSTA switch, in arbitrary pieces: framed (or skipped with a typed error,
//! resynchronising), and every frame's XML read into a message or a typed error, never a
//! panic.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tapir_driver_csta::codec::{CstaCodec, Decoded};
use tapir_driver_csta::message;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut codec = CstaCodec::default();
    let mut buffer = BytesMut::new();
    // The first byte picks the piece size, so that splits land everywhere.
    let piece = usize::from(data.first().copied().unwrap_or(1)).max(1);
    for chunk in data.chunks(piece) {
        buffer.extend_from_slice(chunk);
        while let Ok(Some(decoded)) = codec.decode(&mut buffer) {
            if let Decoded::Frame(frame) = decoded {
                let _ = message::parse(&frame.body);
            }
        }
    }
    // The XML reader on its own, with no framing in front.
    let _ = message::parse(data);
});
