//! Plays TAPISRV for tapir.tsp (Windows only; run under Wine by `crates/tapir/tests/windows_tsp.rs`).
//!
//! Loads the DLL, calls the TSPI functions in the service's order, implements the callbacks
//! and checks what comes back; prints `PASS`/`FAIL` lines and `N passed, M failed`.

#[cfg(windows)]
mod harness;

#[cfg(windows)]
fn main() {
    std::process::exit(harness::run());
}

#[cfg(not(windows))]
fn main() {
    eprintln!("tapir-tsp-harness runs on Windows (or under Wine) only");
    std::process::exit(2);
}
