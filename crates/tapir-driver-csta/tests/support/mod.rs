//! The CSTA tests' real peers: the third-party mock switch pyssimist with the scenario glue in
//! `tests/peer/scenario.py`, and for TLS Debian's `socat` terminating TLS in front of it.
//! Each peer is a child process, killed when its handle drops.

#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader, Read, Write};
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
        .stdin(Stdio::null())
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

/// The scenario peer under a test's control: faults are lines on its stdin, and what it
/// received comes back as its `peer: ` lines on stdout.
pub struct Controlled {
    pub peer: Peer,
    stdin: std::process::ChildStdin,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// Every `peer: ` line read so far, oldest first, without the prefix.
    pub seen: Vec<String>,
}

/// How long a test waits for the peer: generous, for a slow, busy CI machine.
pub const PEER_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Controlled {
    /// Sends `command` (see `tests/peer/scenario.py`) and waits until the peer has carried it out.
    pub async fn tell(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").expect("write to the scenario peer");
        self.stdin.flush().expect("flush the scenario peer's stdin");
        self.wait_for(&format!("done {command}")).await;
    }

    /// Reads the peer's lines until one equals `line`; panics after [`PEER_WAIT`].
    pub async fn wait_for(&mut self, line: &str) {
        self.wait_until(line, |seen| seen.iter().any(|l| l == line))
            .await;
    }

    /// Reads the peer's lines until `done` holds of all lines so far; panics after
    /// [`PEER_WAIT`], naming `what`.
    pub async fn wait_until(&mut self, what: &str, done: impl Fn(&[String]) -> bool) {
        let read = tokio::time::timeout(PEER_WAIT, async {
            loop {
                self.drain();
                if done(&self.seen) {
                    return true;
                }
                match self.lines.recv().await {
                    Some(next) => self.seen.push(next),
                    None => return done(&self.seen),
                }
            }
        })
        .await;
        assert_eq!(
            read,
            Ok(true),
            "the peer never showed {what}; it said {:?}",
            self.seen
        );
    }

    /// Takes in every line the peer has written by now.
    pub fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    /// The lines since the `n`-th (1-based) `accepted`, i.e. what the peer received on that
    /// connection (so far).
    pub fn on_connection(&mut self, n: usize) -> Vec<String> {
        self.drain();
        connection(&self.seen, n)
    }
}

/// The lines of `seen` after its `n`-th (1-based) `accepted` and before the next.
pub fn connection(seen: &[String], n: usize) -> Vec<String> {
    seen.iter()
        .skip_while({
            let mut accepts = 0;
            move |l| {
                if l.as_str() == "accepted" {
                    accepts += 1;
                }
                accepts < n
            }
        })
        .skip(1)
        .take_while(|l| l.as_str() != "accepted")
        .cloned()
        .collect()
}

/// pyssimist with the scenario glue on a free port for `seconds`, taking faults on stdin.
pub async fn controlled_peer(seconds: u32) -> Controlled {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peer/scenario.py");
    let port = free_port();
    let mut child = Command::new(python())
        .arg(&script)
        .args([port.to_string(), seconds.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the pyssimist scenario peer");
    let stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    // A plain thread: the pipe is blocking, and it must be read even while the test awaits.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(at) = line.find("peer: ") {
                let _ = tx.send(line[at + "peer: ".len()..].to_owned());
            } else if line == "ready" {
                let _ = tx.send("ready".to_owned());
            }
        }
    });
    let ready = tokio::time::timeout(PEER_WAIT, lines.recv()).await;
    assert_eq!(
        ready,
        Ok(Some("ready".to_owned())),
        "the scenario peer did not start"
    );
    Controlled {
        peer: Peer { child, port },
        stdin,
        lines,
        seen: Vec::new(),
    }
}
