//! tapir's Windows TAPI service provider (`tapir_tsp.dll`) against a live `tapir serve` with
//! the simulated PBX, under Wine.
//!
//! Wine's own TAPI is stubs, so `tapir-tsp-harness.exe` plays TAPISRV: it loads the DLL, calls
//! the TSPI functions in the service's order, implements the callbacks and checks what comes
//! back (devices and their capabilities, a call between two lines, an outside call, a tapir
//! restart, shutdown). What it cannot do from inside Wine it asks of this test with `@@` lines
//! on its stdout, answered on its stdin:
//!
//! - `@@ SIM-INCOMING <extension> <number> <name>`: the simulated PBX offers an outside call;
//!   answered `ok <the caller's number as tapir reports it>`.
//! - `@@ STOP-SERVER` / `@@ START-SERVER`: tapir stops, then starts again on the same address
//!   and data directory; answered `ok`.
//!
//! Needs the directory `scripts/windows-tsp` builds (`TAPIR_TSP_WINE_DIR`: the DLL, the harness
//! and a `bcryptprimitives.dll` shim) and Wine; skipped without them. The Wine prefix is cached
//! in `$HOME/.cache/tapir/wineprefix` (or `TAPIR_WINEPREFIX`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use tapir_wire::CallDto;

use common::wine::{fresh_wine_session, provider_token, windows_path, wine_command, wine_prefix};
use common::{PATIENCE, Server, line_of, lines, request_as, wait_for_call};

/// How long the whole harness run may take (a limit, not a measurement): it waits up to 15 s
/// for each expected callback and about 30 s for a restart.
const HARNESS_LIMIT: Duration = Duration::from_secs(300);

#[test]
fn the_windows_provider_serves_tapir_lines_under_wine() {
    let Some(artifacts) = std::env::var_os("TAPIR_TSP_WINE_DIR").map(PathBuf::from) else {
        eprintln!(
            "skipped: TAPIR_TSP_WINE_DIR is not set (scripts/windows-tsp builds the DLL and the harness, scripts/test sets it)"
        );
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime for the REST calls");
    let data = tempfile::tempdir().expect("data dir");
    let mut server = Some(Server::start_in(data.path(), None));
    let first = server.as_ref().expect("just started");
    // The provider reconnects to the same address after the restart.
    let listen = first.listen_address().to_owned();
    let ws_base = first.url.replacen("http", "ws", 1);
    let token = runtime.block_on(provider_token(first));
    let expected_lines = runtime.block_on(expected_line_arguments(first));

    let prefix = wine_prefix();
    fresh_wine_session(&prefix);
    let logs = tempfile::tempdir().expect("log dir for the DLL");
    let mut arguments = vec![
        windows_path(&artifacts.join("tapir_tsp.dll")),
        "--server".into(),
        ws_base,
        "--token".into(),
        token,
        "--log-dir".into(),
        windows_path(logs.path()),
        "--log-level".into(),
        "debug".into(),
    ];
    arguments.extend(expected_lines);
    let mut harness = Harness::start(&artifacts, &prefix, &arguments, logs.path());

    while let Some(line) = harness.next_line() {
        let Some(request) = line.strip_prefix("@@ ") else {
            continue;
        };
        let words: Vec<&str> = request.split_whitespace().collect();
        match words.as_slice() {
            ["SIM-INCOMING", extension, number, name] => {
                let server = server.as_ref().expect("tapir runs while calls are made");
                let caller = runtime.block_on(offer_outside_call(server, extension, number, name));
                harness.answer(&format!("ok {caller}"));
            }
            ["STOP-SERVER"] => {
                server.take().expect("STOP-SERVER while tapir runs").stop();
                harness.answer("ok");
            }
            ["START-SERVER"] => {
                assert!(server.is_none(), "START-SERVER while tapir runs");
                server = Some(Server::start_on(data.path(), None, &listen));
                harness.answer("ok");
            }
            _ => panic!("the harness asked for something unknown: {line:?}"),
        }
    }
    let (status, last) = harness.finish();
    assert!(
        status.success() && last.ends_with(" passed, 0 failed"),
        "the harness exited with {status} after {last:?} (its output and the DLL's log are above)"
    );
}

/// `--expect-line PERMANENT_ID,EXTENSION,NAME` for every line tapir lists, in id order: the
/// devices the provider must report.
async fn expected_line_arguments(server: &Server) -> Vec<String> {
    let mut all = lines(server).await;
    all.sort_by_key(|line| line.id);
    assert!(!all.is_empty(), "the simulated PBX has lines");
    all.iter()
        .flat_map(|line| {
            [
                "--expect-line".to_owned(),
                format!("{},{},{}", line.id, line.address, line.name),
            ]
        })
        .collect()
}

/// Has the simulated PBX offer an outside call to `extension`, and returns the caller's number
/// as tapir reports it (what the provider must show as caller id).
async fn offer_outside_call(server: &Server, extension: &str, number: &str, name: &str) -> String {
    let line = line_of(server, extension).await;
    let body = json!({"action": "incoming", "from": number, "name": name});
    let url = server.api(&format!("/lines/{line}/sim"));
    let (status, answer) = request_as(&server.token, Method::POST, &url, Some(body)).await;
    assert_eq!(status, 200, "sim incoming: {answer}");
    let offered: CallDto = wait_for_call(server, "offered from outside", |call| {
        call.line == line && call.state == "offering" && call.caller.number.is_some()
    })
    .await;
    offered.caller.number.expect("checked above")
}

/// The harness running under Wine: its stdout line by line, its stdin for answers. Killed
/// when dropped unfinished; on a failing test the DLL's log is printed.
struct Harness {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    deadline: Instant,
    last: String,
    log_dir: PathBuf,
}

impl Harness {
    fn start(artifacts: &Path, prefix: &Path, arguments: &[String], log_dir: &Path) -> Harness {
        let wine = std::env::var("TAPIR_WINE").unwrap_or_else(|_| "wine".into());
        eprintln!("running {wine} tapir-tsp-harness.exe (token elided)");
        let mut child = wine_command(&wine, prefix)
            .arg(artifacts.join("tapir-tsp-harness.exe"))
            .args(arguments)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the harness under Wine");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        // Threads spawned here inherit the test's output capture: the harness's output shows
        // when the test fails.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("harness! {line}");
            }
        });
        let (sender, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("harness> {line}");
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Harness {
            child,
            stdin,
            lines,
            deadline: Instant::now() + HARNESS_LIMIT,
            last: String::new(),
            log_dir: log_dir.to_path_buf(),
        }
    }

    /// The next line of stdout, or None when the harness has closed it.
    fn next_line(&mut self) -> Option<String> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    self.last = line.trim().to_owned();
                }
                Some(line)
            }
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                panic!("the harness did not finish within {HARNESS_LIMIT:?}")
            }
        }
    }

    fn answer(&mut self, text: &str) {
        writeln!(self.stdin, "{text}")
            .and_then(|()| self.stdin.flush())
            .expect("answer the harness on its stdin");
    }

    /// Waits for the harness to exit: its status and its last line (`N passed, M failed`).
    fn finish(&mut self) -> (std::process::ExitStatus, String) {
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the harness") {
                return (status, self.last.clone());
            }
            assert!(
                Instant::now() < self.deadline + PATIENCE,
                "the harness closed its stdout but does not exit"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn print_dll_logs(&self) {
        let Ok(entries) = std::fs::read_dir(&self.log_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            eprintln!("---- DLL log {} ----", entry.path().display());
            for line in text.lines() {
                eprintln!("dll| {line}");
            }
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            self.print_dll_logs();
        }
    }
}
