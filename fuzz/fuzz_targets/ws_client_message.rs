//! Any text a WebSocket client sends: parsed into a message and, for commands, into the
//! model, without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapir_wire::ClientMessage;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(ClientMessage::Command { command, .. }) = ClientMessage::from_json(text) {
        let _ = command.into_model();
    }
});
