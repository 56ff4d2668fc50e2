//! Any file an administrator uploads as tsecimp XML: parsed without panicking, and whatever
//! parses survives export and parse again unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapir_access::tsecimp;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(document) = tsecimp::parse(&text) {
        let again = tsecimp::parse(&tsecimp::export(&document));
        let again = again.map(|d| d.users.len());
        assert_eq!(again, Ok(document.users.len()));
    }
});
