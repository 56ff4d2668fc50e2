//! Plays TAPISRV for tapir.tsp (Windows only; run under Wine by `crates/tapir/tests/windows_tsp.rs`).
fn main() {
    eprintln!("tapir-tsp-harness runs on Windows (or under Wine) only");
    std::process::exit(2);
}
