//! Any number a PBX sends or a client dials, read in Berlin: presented and made dialable
//! without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapir_numbers::{Location, NumberFormat, NumberPlan};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut berlin = Location::new("DE");
    berlin.area_code = Some("30".into());
    berlin.access_code = Some("0".into());
    for format in [NumberFormat::International, NumberFormat::Phonebook, NumberFormat::Raw] {
        if let Ok(plan) = NumberPlan::new(berlin.clone(), format) {
            let _ = plan.present(&text);
            let _ = plan.dialable(&text);
        }
    }
});
