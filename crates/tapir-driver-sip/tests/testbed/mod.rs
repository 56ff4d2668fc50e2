//! The SIP test bed of sip-testbed.md, started by the test: Kamailio 5.6 with presence and
//! pua_dialoginfo, and baresip UAs remote-controlled over ctrl_tcp. Everything listens on
//! 127.0.0.1 on free ports picked per run; state lives in a fresh directory per run. Every
//! process is stopped by its PID when the [`Bed`] drops, test failure or not: the UAs first
//! (SIGTERM, SIGKILL after 2 s), then Kamailio.
//!
//! With [`Bed::serve_tls`] Kamailio listens for SIP over TLS too, with a certificate from a
//! throwaway [`TestCa`].

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The Debian packages of the test bed.
const PACKAGES: &[&str] = &[
    "kamailio",
    "kamailio-presence-modules",
    "kamailio-extra-modules",
    "kamailio-utils-modules",
    "kamailio-tls-modules",
    "baresip-core",
    "sip-tester",
];

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Kamailio's TLS module (Debian's kamailio-tls-modules).
const KAMAILIO_TLS_MODULE: &str = "/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so";

fn have_all() -> bool {
    have("kamailio") && have("baresip") && have("sipp") && Path::new(KAMAILIO_TLS_MODULE).is_file()
}

/// Makes sure kamailio (with its TLS module), baresip and sipp are installed, installing
/// them with apt-get if not; fails the test with a clear message when they cannot be had.
pub fn ensure_peers() {
    if have_all() {
        return;
    }
    eprintln!("installing the SIP test bed: {}", PACKAGES.join(" "));
    let _ = Command::new("apt-get").args(["update", "-q"]).status();
    let status = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(PACKAGES)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    assert!(
        have_all(),
        "the SIP test bed needs kamailio, its TLS module, baresip and sipp (Debian packages {}); apt-get install failed: {status:?}",
        PACKAGES.join(" ")
    );
}

/// A port free on 127.0.0.1 for UDP and TCP, with `span - 1` free neighbours above it.
pub fn free_port(span: u16) -> u16 {
    for _ in 0..200 {
        let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(base) = socket.local_addr().map(|a| a.port()) else {
            continue;
        };
        drop(socket);
        if base > 65_000 {
            continue;
        }
        let all_free = (base..base + span).all(|port| {
            UdpSocket::bind(("127.0.0.1", port)).is_ok()
                && TcpListener::bind(("127.0.0.1", port)).is_ok()
        });
        if all_free {
            return base;
        }
    }
    panic!("no free port block of {span} on 127.0.0.1");
}

/// The ports of one run; override the SIP port with `TAPIR_SIP_TEST_PORT`.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub sip: u16,
    pub http: u16,
    pub rpc: u16,
    /// SIP over TLS, with [`Bed::serve_tls`].
    pub tls: u16,
    /// Kamailio's evapi feed, with the define `WITH_EVAPI`.
    pub evapi: u16,
}

impl Ports {
    pub fn pick() -> Ports {
        let sip = std::env::var("TAPIR_SIP_TEST_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| free_port(1));
        Ports {
            sip,
            http: free_port(1),
            rpc: free_port(1),
            tls: free_port(1),
            evapi: free_port(1),
        }
    }
}

struct Process {
    name: String,
    child: Child,
}

/// The running test bed.
pub struct Bed {
    pub dir: PathBuf,
    pub ports: Ports,
    kamailio: Option<Process>,
    uas: Vec<Process>,
    runs: u32,
    /// Extra `-A` defines for Kamailio (`WITH_AUTH`).
    pub defines: Vec<&'static str>,
    /// Kamailio's shared memory in MB (`-m`): 256 for functional runs, 512 for load.
    pub shm_mb: u32,
    /// The tls module's settings file, with [`Bed::serve_tls`].
    tls_cfg: Option<PathBuf>,
}

impl Bed {
    pub fn new() -> Bed {
        ensure_peers();
        let dir = std::env::temp_dir().join(format!(
            "tapir-sip-test-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&dir).expect("state dir");
        Bed {
            dir,
            ports: Ports::pick(),
            kamailio: None,
            uas: Vec::new(),
            runs: 0,
            defines: Vec::new(),
            shm_mb: 256,
            tls_cfg: None,
        }
    }

    /// Kamailio (from its next start) serves SIP over TLS on `ports.tls` with this
    /// certificate chain and key (PEM); it asks no client certificate.
    pub fn serve_tls(&mut self, certificate: &str, key: &str) {
        let certificate_path = self.dir.join("kamailio-cert.pem");
        let key_path = self.dir.join("kamailio-key.pem");
        std::fs::write(&certificate_path, certificate).expect("write the certificate");
        std::fs::write(&key_path, key).expect("write the key");
        let cfg = format!(
            "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n\
             certificate = {}\nprivate_key = {}\n\n\
             [client:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n",
            certificate_path.display(),
            key_path.display()
        );
        let cfg_path = self.dir.join("tls.cfg");
        std::fs::write(&cfg_path, cfg).expect("write tls.cfg");
        self.tls_cfg = Some(cfg_path);
        if !self.defines.contains(&"WITH_TLS") {
            self.defines.push("WITH_TLS");
        }
    }

    /// Starts Kamailio with fresh state and waits for its JSON-RPC.
    pub async fn start_kamailio(&mut self) {
        self.runs += 1;
        let state = self.dir.join(format!("kam-{}", self.runs));
        std::fs::create_dir_all(state.join("run")).expect("kamailio state dir");
        let copied = Command::new("cp")
            .arg("-r")
            .arg("/usr/share/kamailio/dbtext/kamailio")
            .arg(state.join("dbtext"))
            .status()
            .expect("cp");
        assert!(copied.success(), "cannot copy kamailio's db_text tables");
        let template = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed/kamailio.cfg"),
        )
        .expect("tests/testbed/kamailio.cfg");
        let cfg = template
            .replace("@SIP_PORT@", &self.ports.sip.to_string())
            .replace("@HTTP_PORT@", &self.ports.http.to_string())
            .replace("@RPC_PORT@", &self.ports.rpc.to_string())
            .replace("@TLS_PORT@", &self.ports.tls.to_string())
            .replace("@EVAPI_PORT@", &self.ports.evapi.to_string())
            .replace(
                "@TLS_CFG@",
                &self
                    .tls_cfg
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            );
        let cfg_path = state.join("kamailio.cfg");
        std::fs::write(&cfg_path, cfg).expect("write kamailio.cfg");
        let log = std::fs::File::create(state.join("kamailio.log")).expect("log");
        let s = state.display().to_string();
        let defines: String = self.defines.iter().map(|d| format!(" -A {d}")).collect();
        let script = format!(
            "ulimit -c 0; exec kamailio -f {cfg} -DD -E -w {s} -Y {s}/run -P {s}/run/kamailio.pid -m {shm} -M 16 -A 'DBURL=\"text://{s}/dbtext\"'{defines}",
            cfg = cfg_path.display(),
            shm = self.shm_mb,
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn kamailio");
        self.kamailio = Some(Process {
            name: "kamailio".into(),
            child,
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.rpc("core.uptime", json!([])).await.is_none() {
            assert!(
                Instant::now() < deadline,
                "kamailio did not come up; see {}",
                state.join("kamailio.log").display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The log of the Kamailio started last.
    pub fn kamailio_log(&self) -> String {
        std::fs::read_to_string(
            self.dir
                .join(format!("kam-{}", self.runs))
                .join("kamailio.log"),
        )
        .unwrap_or_default()
    }

    /// Stops Kamailio (SIGTERM, then SIGKILL) and waits for it.
    pub fn stop_kamailio(&mut self) {
        if let Some(process) = self.kamailio.take() {
            stop(process);
        }
    }

    /// One JSON-RPC call over the datagram socket; `None` without an answer.
    pub async fn rpc(&self, method: &str, params: Value) -> Option<Value> {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.ok()?;
        let request = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
        socket
            .send_to(
                request.to_string().as_bytes(),
                ("127.0.0.1", self.ports.rpc),
            )
            .await
            .ok()?;
        let mut buf = vec![0u8; 65_535];
        let (n, _) = tokio::time::timeout(Duration::from_millis(300), socket.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        serde_json::from_slice(&buf[..n]).ok()
    }

    /// Whether Kamailio refuses subscriptions to line 299 (the test bed's policy switch).
    pub async fn refuse_299(&self, refuse: bool) {
        let answer = self
            .rpc("pv.shvSet", json!(["refuse299", "int", i32::from(refuse)]))
            .await;
        assert!(
            answer.as_ref().is_some_and(|a| a.get("error").is_none()),
            "pv.shvSet refuse299: {answer:?}"
        );
    }

    /// Starts a baresip UA for `ext` in `answermode` and returns its ctrl port.
    pub fn start_ua(&mut self, ext: &str, answermode: &str) -> u16 {
        let sip = free_port(2);
        let ctrl = free_port(1);
        let rtp = free_port(100);
        let dir = self.dir.join(format!("ua-{ext}"));
        std::fs::create_dir_all(&dir).expect("ua dir");
        let config = format!(
            "poll_method\t\tepoll\nsip_listen\t\t127.0.0.1:{sip}\nnet_interface\t\t127.0.0.1\n\
             dns_server\t\t127.0.0.1:53\ncall_local_timeout\t120\ncall_max_calls\t\t4\n\
             audio_player\t\taubridge,nil{ext}\naudio_source\t\tausine,440\naudio_alert\t\taubridge,nil{ext}\n\
             audio_level\t\tno\nausrc_srate\t\t48000\nausrc_channels\t\t2\nausrc_format\t\ts16\n\
             auplay_format\t\ts16\nauenc_format\t\ts16\naudec_format\t\ts16\naudio_buffer\t\t20-160\n\
             rtp_tos\t\t\t0\nrtp_ports\t\t{rtp}-{}\nrtcp_mux\t\tno\njitter_buffer_delay\t5-10\nrtp_stats\t\tno\n\
             module_path\t\t/usr/lib/baresip/modules\nmodule\t\t\tg711.so\nmodule\t\t\taubridge.so\n\
             module\t\t\tausine.so\nmodule_tmp\t\tuuid.so\nmodule_tmp\t\taccount.so\nmodule_app\t\tmenu.so\n\
             module_app\t\tctrl_tcp.so\nctrl_tcp_listen\t\t127.0.0.1:{ctrl}\nstatmode_default\toff\n",
            rtp + 99
        );
        std::fs::write(dir.join("config"), config).expect("ua config");
        let account = format!(
            "<sip:{ext}@127.0.0.1;transport=udp>;auth_pass=secret;answermode={answermode};regint=600;mwi=no;pubint=0;\
             call_transfer=yes;audio_codecs=PCMU,PCMA;outbound=\"sip:127.0.0.1:{};transport=udp\"\n",
            self.ports.sip
        );
        std::fs::write(dir.join("accounts"), account).expect("ua accounts");
        std::fs::write(dir.join("contacts"), "").expect("ua contacts");
        let log = std::fs::File::create(self.dir.join(format!("ua-{ext}.log"))).expect("log");
        let child = Command::new("baresip")
            .arg("-4")
            .arg("-f")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn baresip");
        self.uas.push(Process {
            name: format!("baresip {ext}"),
            child,
        });
        ctrl
    }

    /// Stops `ext`'s baresip (it un-REGISTERs on SIGTERM) and waits for it.
    pub fn stop_ua(&mut self, ext: &str) {
        let name = format!("baresip {ext}");
        if let Some(index) = self.uas.iter().position(|p| p.name == name) {
            stop(self.uas.remove(index));
        }
    }

    /// Waits until `ext` is no longer registered at Kamailio.
    pub async fn wait_unregistered(&self, ext: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = self.rpc("ul.lookup", json!(["location", ext])).await;
            if answer.as_ref().is_some_and(|a| a.get("error").is_some()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{ext} is still registered: {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    /// Registers `user` at `contact` without a UA (`ul.add`), for sipp's UAS.
    pub async fn ul_add(&self, user: &str, contact: &str) {
        let answer = self
            .rpc(
                "ul.add",
                json!([
                    "location",
                    user,
                    contact,
                    3600,
                    1.0,
                    "",
                    0,
                    0,
                    4_294_967_295u64
                ]),
            )
            .await;
        assert!(
            answer.as_ref().is_some_and(|a| a.get("error").is_none()),
            "ul.add {user}: {answer:?}"
        );
    }

    /// Writes a sipp scenario into the run's directory and returns its path.
    pub fn scenario(&self, name: &str, xml: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, xml).expect("write sipp scenario");
        path
    }

    /// Starts sipp with `args` (after the common ones: loopback, no stdin, its own port) in
    /// the run's directory; wait for it with [`Sipp::wait`].
    pub fn start_sipp(&self, name: &str, args: &[String]) -> Sipp {
        let port = free_port(1);
        let media = free_port(4);
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).expect("log");
        let child = Command::new("sipp")
            .current_dir(&self.dir)
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1", "-nostdin"])
            .args(["-p", &port.to_string(), "-mp", &media.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn sipp");
        Sipp {
            port,
            log: self.dir.join(format!("{name}.log")),
            process: Some(Process {
                name: format!("sipp {name}"),
                child,
            }),
        }
    }

    /// Waits until `ext` is registered at Kamailio.
    pub async fn wait_registered(&self, ext: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = self.rpc("ul.lookup", json!(["location", ext])).await;
            if answer.as_ref().is_some_and(|a| a.get("result").is_some()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{ext} did not register: {answer:?}; logs in {}",
                self.dir.display()
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        for process in self.uas.drain(..) {
            stop(process);
        }
        if let Some(process) = self.kamailio.take() {
            stop(process);
        }
        eprintln!("test bed logs in {}", self.dir.display());
        if std::thread::panicking() {
            // CI keeps only the test's output: show the peers' side of the failure.
            show_tail(
                &self
                    .dir
                    .join(format!("kam-{}", self.runs))
                    .join("kamailio.log"),
                150,
            );
        }
    }
}

/// Prints the last `lines` lines of a log to stderr.
fn show_tail(path: &Path, lines: usize) {
    let Ok(text) = std::fs::read_to_string(path) else {
        eprintln!("(no log at {})", path.display());
        return;
    };
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    eprintln!("--- last {} lines of {}", all.len() - start, path.display());
    for line in &all[start..] {
        eprintln!("{line}");
    }
}

/// SIGTERM, then SIGKILL after 2 s; always reaped.
fn stop(mut process: Process) {
    let pid = process.child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = process.child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("{} ({pid}) ignored SIGTERM; killing", process.name);
    let _ = process.child.kill();
    let _ = process.child.wait();
}

/// A baresip ctrl_tcp connection: netstring JSON commands and pushed events.
pub struct Ctrl {
    pub name: String,
    stream: TcpStream,
    buf: Vec<u8>,
    pub events: VecDeque<Value>,
    token: u32,
}

impl Ctrl {
    pub async fn connect(name: &str, port: u16) -> Ctrl {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match TcpStream::connect(("127.0.0.1", port)).await {
                Ok(stream) => {
                    return Ctrl {
                        name: name.into(),
                        stream,
                        buf: Vec::new(),
                        events: VecDeque::new(),
                        token: 0,
                    };
                }
                Err(error) => {
                    assert!(Instant::now() < deadline, "ctrl_tcp of {name}: {error}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    async fn read_message(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            if let Some(colon) = self.buf.iter().position(|b| *b == b':') {
                let len: usize = std::str::from_utf8(&self.buf[..colon]).ok()?.parse().ok()?;
                if self.buf.len() > colon + len + 1 {
                    let message =
                        serde_json::from_slice(&self.buf[colon + 1..colon + 1 + len]).ok();
                    self.buf.drain(..colon + len + 2);
                    return message;
                }
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline.into(), self.stream.read(&mut chunk))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends a command and returns its response (events read meanwhile are kept).
    pub async fn cmd(&mut self, command: &str, params: Option<&str>) -> Value {
        self.token += 1;
        let token = format!("t{}", self.token);
        let mut body = json!({"command": command, "token": token});
        if let Some(params) = params {
            body["params"] = json!(params);
        }
        let raw = body.to_string();
        let frame = format!("{}:{raw},", raw.len());
        self.stream
            .write_all(frame.as_bytes())
            .await
            .expect("ctrl write");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let message = self
                .read_message(deadline)
                .await
                .unwrap_or_else(|| panic!("{}: no answer to {command}", self.name));
            if message.get("event").is_some() {
                self.events.push_back(message);
            } else if message.get("token").and_then(Value::as_str) == Some(token.as_str()) {
                return message;
            }
        }
    }

    /// Waits for an event of `kind` (kept events first); false after `limit`.
    pub async fn wait_event(&mut self, kind: &str, limit: Duration) -> bool {
        if let Some(index) = self
            .events
            .iter()
            .position(|e| e.get("type").and_then(Value::as_str) == Some(kind))
        {
            self.events.drain(..=index);
            return true;
        }
        let deadline = Instant::now() + limit;
        while let Some(message) = self.read_message(deadline).await {
            if message.get("type").and_then(Value::as_str) == Some(kind) {
                return true;
            }
        }
        false
    }

    pub fn clear(&mut self) {
        self.events.clear();
    }
}

/// A running sipp.
pub struct Sipp {
    /// Its SIP port on 127.0.0.1.
    pub port: u16,
    log: PathBuf,
    process: Option<Process>,
}

impl Sipp {
    /// Waits for sipp to end by itself (it does after `-m` calls); true when it exited 0
    /// (every call succeeded). Kills it after `limit`.
    pub async fn wait(&mut self, limit: Duration) -> bool {
        let Some(mut process) = self.process.take() else {
            return false;
        };
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = process.child.try_wait() {
                if !status.success() {
                    show_tail(&self.log, 60);
                }
                return status.success();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!("{} did not end in {limit:?}", process.name);
        show_tail(&self.log, 60);
        stop(process);
        false
    }
}

impl Sipp {
    /// `Some(success)` once sipp has ended by itself, `None` while it runs.
    pub fn finished(&mut self) -> Option<bool> {
        let process = self.process.as_mut()?;
        let status = process.child.try_wait().ok().flatten()?;
        if !status.success() {
            show_tail(&self.log, 60);
        }
        self.process = None;
        Some(status.success())
    }
}

impl Sipp {
    /// The count of successful calls in sipp's final statistics (its log), once it ended.
    pub fn successful_calls(&self) -> Option<u64> {
        let log = std::fs::read_to_string(&self.log).ok()?;
        let line = log.lines().rev().find(|l| l.contains("Successful call"))?;
        line.rsplit('|').next()?.trim().parse().ok()
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Some(process) = self.process.take() {
            stop(process);
        }
    }
}

/// A throwaway certificate authority, and server certificates it issues.
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

/// A server's certificate (PEM, issued by a [`TestCa`]) and its key (PEM).
pub struct Issued {
    pub certificate: String,
    pub key: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().expect("CA key");
        TestCa {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    /// The CA's certificate (PEM), for `tls_ca_file`.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `name` (a DNS name).
    pub fn issue(&self, name: &str) -> Issued {
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().expect("server key");
        let certificate = params
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        Issued {
            certificate: certificate.pem(),
            key: key.serialize_pem(),
        }
    }
}
