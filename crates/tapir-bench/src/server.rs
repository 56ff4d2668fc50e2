//! The server under test: a `tapir serve` this tool starts (or one it is pointed at), how
//! long it takes to bring all lines into service, and its CPU and memory from `/proc`.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tapir_wire::InstanceDto;

/// The name of the simulated instance in the config this tool writes.
pub const INSTANCE: &str = "bench";

/// The first extension number; lines are `FIRST_EXTENSION ..`.
pub const FIRST_EXTENSION: u32 = 100_000;

/// How long the server may take to say where it listens, and to bring its lines up.
const START_PATIENCE: Duration = Duration::from_secs(120);

/// How long a stopping server may take before it is killed.
const STOP_PATIENCE: Duration = Duration::from_secs(10);

/// A server under test.
pub struct Server {
    /// Present when this tool started the server; it is stopped on drop.
    child: Option<Child>,
    pub url: String,
    pub pid: Option<u32>,
    /// The bearer token used for the API: the administrator token a started server leaves in
    /// its data directory, or `--token` for an external one.
    token: Option<String>,
    _temp: Option<tempfile::TempDir>,
}

/// How the server came up.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Startup {
    /// From spawning the process to its "listening" line.
    pub listening_ms: f64,
    /// From spawning the process to the instance being up with all lines.
    pub all_lines_ms: f64,
}

impl Server {
    /// Starts `tapir serve` with one simulated instance of `lines` extensions. With
    /// `auto_answer`, the upper half of them answers ringing calls at once.
    pub fn start(tapir: &Path, lines: u32, auto_answer: bool) -> Result<(Server, Instant)> {
        let temp = tempfile::tempdir().context("cannot create a temporary directory")?;
        let config = temp.path().join("tapir.toml");
        std::fs::write(&config, config_text(lines, auto_answer))
            .with_context(|| format!("cannot write {}", config.display()))?;
        let log = std::fs::File::create(temp.path().join("tapir.log"))
            .context("cannot create the server log")?;
        let started = Instant::now();
        let mut child = Command::new(tapir)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(temp.path())
            .env_remove("TAPIR_CONFIG")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("cannot start {}", tapir.display()))?;
        let pid = child.id();
        let stdout = child.stdout.take().context("no stdout from tapir serve")?;
        let mut server = Server {
            child: Some(child),
            url: String::new(),
            pid: Some(pid),
            token: None,
            _temp: Some(temp),
        };
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .context("cannot read tapir serve's output")?;
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned);
        let Some(addr) = addr else {
            bail!(
                "tapir serve did not say where it listens (said {line:?}); see {}",
                server.log_path()
            );
        };
        server.url = format!("http://{addr}");
        if let Some(temp) = &server._temp {
            let path = temp.path().join("cli-token");
            let token = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read the server's token {}", path.display()))?;
            server.token = Some(token.trim().to_owned());
        }
        // Keep reading stdout so a chatty server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        Ok((server, started))
    }

    /// A server started by somebody else.
    pub fn external(url: &str, pid: Option<u32>, token: Option<String>) -> Result<Server> {
        let url = url.trim_end_matches('/').to_owned();
        let host_ok = url.starts_with("http://127.0.0.1:") || url == "http://127.0.0.1";
        if !host_ok {
            bail!("--server must be http://127.0.0.1:PORT (this tool only loads loopback)");
        }
        Ok(Server {
            child: None,
            url,
            pid,
            token,
            _temp: None,
        })
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}{}{path}", self.url, tapir_wire::API_PREFIX)
    }

    /// The WebSocket URL, with the token as `access_token`.
    pub fn ws_url(&self) -> String {
        let base = format!("{}/ws", self.api("").replacen("http", "ws", 1));
        match &self.token {
            Some(token) => format!("{base}?access_token={token}"),
            None => base,
        }
    }

    /// An HTTP client that sends the token.
    pub fn http(&self) -> Result<reqwest::Client> {
        // The workspace builds reqwest with rustls but no default crypto provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = &self.token {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {token}")
                    .parse()
                    .context("the token is not a header value")?,
            );
        }
        Ok(reqwest::Client::builder()
            .default_headers(headers)
            .build()?)
    }

    fn log_path(&self) -> String {
        self._temp
            .as_ref()
            .map(|t| t.path().join("tapir.log").display().to_string())
            .unwrap_or_default()
    }

    /// Waits until instance `bench` (or, for an external server, the only instance) is up
    /// with `lines` lines; returns the instance.
    pub async fn wait_lines(&self, lines: u32) -> Result<InstanceDto> {
        let http = self.http()?;
        let deadline = Instant::now() + START_PATIENCE;
        let mut last = String::new();
        loop {
            let answer = http.get(self.api("/instances")).send().await;
            if let Ok(response) = answer
                && let Ok(instances) = response.json::<Vec<InstanceDto>>().await
            {
                let ours = instances.iter().find(|i| i.name == INSTANCE).or(
                    if self.child.is_none() && instances.len() == 1 {
                        instances.first()
                    } else {
                        None
                    },
                );
                if let Some(instance) = ours {
                    if instance.status == "up" && instance.lines == lines as usize {
                        return Ok(instance.clone());
                    }
                    last = format!("{} with {} lines", instance.status, instance.lines);
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "the instance was not up with {lines} lines after {START_PATIENCE:?} \
                     (last seen: {last}); server log: {}",
                    self.log_path()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// CPU time used so far and resident memory now, when the process is known.
    pub fn sample(&self) -> Option<ProcSample> {
        self.pid.and_then(ProcSample::read)
    }

    /// Stops a server this tool started: SIGTERM, then SIGKILL after a while.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + STOP_PATIENCE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The config of a server under test.
fn config_text(lines: u32, auto_answer: bool) -> String {
    let mut text = format!(
        "[[instances]]\nname = \"{INSTANCE}\"\n[instances.driver]\ntype = \"sim\"\n\
         extensions = {lines}\nfirst_extension = {FIRST_EXTENSION}\nring_delay_ms = 0\n\
         auto_answer_delay_ms = 0\n"
    );
    if auto_answer {
        text.push_str("auto_answer = [");
        for n in lines / 2..lines {
            if n > lines / 2 {
                text.push(',');
            }
            text.push_str(&format!("\"{}\"", FIRST_EXTENSION + n));
        }
        text.push_str("]\n");
    }
    text
}

/// One reading of `/proc/<pid>`.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// User plus system CPU time, in seconds.
    pub cpu_s: f64,
    /// Resident memory, KiB.
    pub rss_kib: u64,
}

impl ProcSample {
    pub fn read(pid: u32) -> Option<ProcSample> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces; the fields after it are space-separated.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Fields 14 and 15 of stat(5) (utime, stime) are 11 and 12 after the name.
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())?;
        Some(ProcSample {
            cpu_s: (utime + stime) as f64 / clock_ticks(),
            rss_kib,
        })
    }
}

/// Clock ticks per second (`getconf CLK_TCK`), 100 when it cannot be asked.
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_answers_with_the_upper_half() {
        let text = config_text(4, true);
        assert!(text.contains("extensions = 4"), "{text}");
        assert!(
            text.contains("auto_answer = [\"100002\",\"100003\"]"),
            "{text}"
        );
        assert!(!config_text(4, false).contains("auto_answer ="));
    }

    #[test]
    fn this_process_can_be_sampled() {
        let sample = ProcSample::read(std::process::id()).expect("own /proc entry");
        assert!(sample.rss_kib > 0);
    }
}
