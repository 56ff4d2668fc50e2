//! Any bytes from an Asterisk link, in arbitrary pieces: decoded into frames or typed errors,
//! never a panic.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tapir_driver_ami::codec::AmiCodec;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut codec = AmiCodec::default();
    let mut buffer = BytesMut::new();
    // The first byte picks the piece size, so that splits land everywhere.
    let piece = usize::from(data.first().copied().unwrap_or(1)).max(1);
    for chunk in data.chunks(piece) {
        buffer.extend_from_slice(chunk);
        while let Ok(Some(_)) = codec.decode(&mut buffer) {}
    }
    let _ = codec.decode_eof(&mut buffer);
});
