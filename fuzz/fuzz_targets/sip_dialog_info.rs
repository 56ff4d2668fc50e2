//! Any NOTIFY body a SIP server sends for the dialog event package: read into a document or a
//! typed error, never a panic, and every document read is applied to the mapping (whatever
//! its versions, states, directions and parties) without a panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapir_driver_sip::dialog_info;
use tapir_driver_sip::mapping::{LineSpec, Tracker};
use tapir_provider::DeviceKey;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(info)) = dialog_info::parse(data) else {
        return;
    };
    let lines = ["201", "202"]
        .into_iter()
        .map(|user| LineSpec {
            device: DeviceKey(format!("sip:{user}@127.0.0.1")),
            user: user.into(),
            name: None,
        })
        .collect();
    let mut tracker = Tracker::new(lines, "tapir");
    let mut reports = Vec::new();
    let device = DeviceKey("sip:201@127.0.0.1".into());
    // Twice: the second time as the same subscription's repeated (stale) version.
    tracker.apply(&device, "sub", &info, &mut reports);
    tracker.apply(&device, "sub", &info, &mut reports);
    let _ = tracker.calls();
});
