//! Running Windows programs of the tests under Wine: paths, the cached prefix, limits.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use super::{Server, request_as};

/// Creating a Wine prefix takes about ten seconds; allow for a slow, busy machine.
pub const WINEBOOT_LIMIT: Duration = Duration::from_secs(180);

/// `/a/b` as Wine sees it from Windows: `Z:\a\b`.
pub fn windows_path(path: &Path) -> String {
    let absolute = std::path::absolute(path).expect("an absolute path");
    format!("Z:{}", absolute.display().to_string().replace('/', "\\"))
}

pub fn wine_command(program: &str, prefix: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .env("WINEPREFIX", prefix)
        .env("WINEDEBUG", "-all")
        // No Mono or Gecko installers: they would wait for a click.
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=");
    command
}

/// The cached Wine prefix, created on first use.
pub fn wine_prefix() -> PathBuf {
    let prefix = match std::env::var_os("TAPIR_WINEPREFIX") {
        Some(prefix) => PathBuf::from(prefix),
        None => {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
            PathBuf::from(home).join(".cache/tapir/wineprefix")
        }
    };
    if prefix.join("system.reg").exists() {
        return prefix;
    }
    std::fs::create_dir_all(&prefix).expect("create the Wine prefix directory");
    eprintln!("creating the Wine prefix {}", prefix.display());
    let mut boot = wine_command("wineboot", &prefix)
        .arg("-i")
        .stdout(Stdio::null())
        .spawn()
        .expect("run wineboot (is Wine installed?)");
    wait_with_limit(&mut boot, WINEBOOT_LIMIT, "wineboot -i");
    // wineboot returns before the registry is on disk; wait for this prefix's wineserver.
    let mut server = wine_command("wineserver", &prefix)
        .arg("-w")
        .spawn()
        .expect("run wineserver -w");
    wait_with_limit(&mut server, WINEBOOT_LIMIT, "wineserver -w");
    assert!(
        prefix.join("system.reg").exists(),
        "wineboot left no registry in {}",
        prefix.display()
    );
    prefix
}

/// Ends the prefix's Wine session, if one is left running by an earlier test: a session
/// started without a display (or with another one) would host the next program's windows on
/// its own desktop.
pub fn fresh_wine_session(prefix: &Path) {
    let mut stop = wine_command("wineserver", prefix)
        .arg("-k")
        .spawn()
        .expect("run wineserver -k");
    let _ = stop.wait();
    let mut settle = wine_command("wineserver", prefix)
        .arg("-w")
        .spawn()
        .expect("run wineserver -w");
    wait_with_limit(&mut settle, WINEBOOT_LIMIT, "wineserver -w");
}

pub fn wait_with_limit(child: &mut Child, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait().expect("wait for a child") {
            Some(status) => {
                assert!(status.success(), "{what} exited with {status}");
                return;
            }
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not finish within {limit:?}");
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A token of the administrator that outlives a restart (the CLI's token does not: tapir
/// issues a fresh one at every start).
pub async fn provider_token(server: &Server) -> String {
    let body = json!({"label": "windows tsp"});
    let (status, issued) = request_as(
        &server.token,
        Method::POST,
        &server.api("/tokens"),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    issued["token"]
        .as_str()
        .expect("an issued token carries its secret")
        .to_owned()
}
