//! What the harness cannot do from inside Wine (stop and start tapir, ask the simulated PBX
//! for an outside call) it asks of the Linux test that runs it: one `@@ ...` line on stdout,
//! one answer line on stdin (`ok`, optionally followed by data, or anything else as an error).

use std::io::{BufRead, Write};

/// Sends `request` to the test and returns the data after its `ok`.
pub fn ask(request: &str) -> Result<String, String> {
    println!("@@ {request}");
    std::io::stdout()
        .flush()
        .map_err(|e| format!("cannot write to the test: {e}"))?;
    let mut answer = String::new();
    let read = std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| format!("no answer from the test to {request:?}: {e}"))?;
    if read == 0 {
        return Err(format!(
            "the test closed stdin instead of answering {request:?}"
        ));
    }
    let answer = answer.trim();
    match answer.strip_prefix("ok") {
        Some(data) => Ok(data.trim().to_owned()),
        None => Err(format!("the test answered {request:?} with {answer:?}")),
    }
}
