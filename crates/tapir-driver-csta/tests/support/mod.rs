//! The CSTA tests' real peers: the third-party mock switch pyssimist with the scenario glue in
//! `tests/peer/scenario.py`, and for TLS Debian's `socat` terminating TLS in front of it.
//! Each peer is a child process, killed when its handle drops.

#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The interpreter of pyssimist's venv (`TAPIR_PYSSIMIST_PYTHON`, set by `scripts/test`).
pub fn python() -> String {
    std::env::var("TAPIR_PYSSIMIST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Why the pyssimist tests cannot run here, if they cannot.
pub fn pyssimist_missing() -> Option<String> {
    let probe = Command::new(python())
        .args(["-c", "import common.server, csta.CstaUser"])
        .output();
    if probe.is_ok_and(|o| o.status.success()) {
        return None;
    }
    Some(format!(
        "SKIPPED: pyssimist is not importable by {} (pip install pyssimist==1.0.3; scripts/test does it)",
        python()
    ))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A child process, killed at the end of the test.
pub struct Peer {
    child: Child,
    pub port: u16,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `stream` until a line containing `marker`; then keeps draining it so the child
/// never blocks on a full pipe.
fn wait_for_line(stream: impl Read + Send + 'static, marker: &str, what: &str) {
    let mut lines = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        let read = lines.read_line(&mut line).unwrap_or(0);
        assert!(read > 0, "{what} exited before it was ready");
        if line.contains(marker) {
            break;
        }
    }
    std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
}

/// pyssimist with the scenario glue, listening on a free port for `seconds`.
pub fn scenario_peer(seconds: u32) -> Peer {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peer/scenario.py");
    let port = free_port();
    let mut child = Command::new(python())
        .arg(&script)
        .args([port.to_string(), seconds.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the pyssimist scenario peer");
    let stdout = child.stdout.take().expect("piped stdout");
    let peer = Peer { child, port };
    wait_for_line(stdout, "ready", "the pyssimist scenario peer");
    peer
}

/// Installs Debian's socat when it is missing (the TLS test's terminator).
pub fn ensure_socat() {
    if have("socat") {
        return;
    }
    eprintln!("installing socat for the CSTA TLS test");
    let _ = Command::new("apt-get").args(["update", "-q"]).status();
    let status = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "socat"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    assert!(
        have("socat"),
        "the CSTA TLS test needs socat (Debian package socat); apt-get install failed: {status:?}"
    );
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// socat terminating TLS with `cert` and `key` on a free port, forwarding each connection in
/// clear to `backend` on 127.0.0.1.
pub fn tls_terminator(cert: &Path, key: &Path, backend: u16) -> Peer {
    let port = free_port();
    let listen = format!(
        "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
        cert.display(),
        key.display()
    );
    let mut child = Command::new("socat")
        .args(["-d", "-d", &listen, &format!("TCP:127.0.0.1:{backend}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start socat");
    let stderr = child.stderr.take().expect("piped stderr");
    let peer = Peer { child, port };
    wait_for_line(stderr, "listening on", "socat");
    peer
}

/// A self-signed certificate for `localhost`, written as PEM files into `dir`:
/// (certificate, key).
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let issued = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("a self-signed certificate");
    let cert = dir.join("switch.pem");
    let key = dir.join("switch.key");
    std::fs::write(&cert, issued.cert.pem()).expect("write the certificate");
    std::fs::write(&key, issued.signing_key.serialize_pem()).expect("write the key");
    (cert, key)
}
