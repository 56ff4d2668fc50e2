//! The Windows provider's configuration dialog, driven like a person would: under Wine in a
//! virtual X display (Xvfb), xdotool types the server and an application token, presses
//! "Test connection" (its answer shows in the dialog and is not read here) and OK. The
//! settings must land in the registry (the token DPAPI-protected, not in clear) and connect:
//! `TapirTestConnection` then reports the server's lines.
//!
//! Needs what `scripts/windows-tsp` builds (`TAPIR_TSP_WINE_DIR`), Wine, `xvfb-run` and
//! `xdotool`; skipped without `TAPIR_TSP_WINE_DIR`.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::Server;
use common::wine::{
    fresh_wine_session, provider_token, wait_with_limit, windows_path, wine_command, wine_prefix,
};

/// A provider id of its own, so the run does not meet another test's settings.
const PROVIDER: u32 = 4711;

/// How long the dialog session may take (a limit, not a measurement); a fresh Wine session
/// loading the 36 MB debug DLL on a busy machine has taken over 30 s to show the window.
const SESSION_LIMIT: Duration = Duration::from_secs(240);

fn key() -> String {
    format!("HKLM\\SOFTWARE\\tapir\\TSP\\Providers\\{PROVIDER}")
}

/// Runs a Wine program (with the DLL's directory on Wine's PATH, for the test-only
/// bcryptprimitives shim) and returns its output.
fn wine(prefix: &std::path::Path, artifacts: &std::path::Path, args: &[&str]) -> Output {
    wine_command("wine", prefix)
        .env("WINEPATH", windows_path(artifacts))
        .args(args)
        .output()
        .expect("run wine")
}

/// The person at the dialog: waits for its window, clicks into the server field, types,
/// tests the connection, and confirms with Enter (OK is the default button).
fn session_script(dll: &str, server: &str, token: &str) -> String {
    format!(
        r#"set -u
wine rundll32 '{dll}',TapirConfigDialog --provider {PROVIDER} &
dialog=$!
for _ in $(seq 600); do
  window=$(xdotool search --name 'tapir TAPI provider' 2>/dev/null | head -1)
  [ -n "$window" ] && break
  sleep 0.2
done
[ -n "${{window:-}}" ] || {{ echo 'the dialog did not open'; kill $dialog; exit 3; }}
sleep 1
eval "$(xdotool getwindowgeometry --shell "$window")"
xdotool mousemove --sync $((X + 300)) $((Y + 22)) click 1
xdotool type --delay 5 '{server}'
xdotool key Tab
xdotool type --delay 5 '{token}'
xdotool key alt+t
sleep 3
xdotool key Return
wait $dialog
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_configuration_dialog_saves_settings_that_connect() {
    let Some(artifacts) = std::env::var_os("TAPIR_TSP_WINE_DIR").map(PathBuf::from) else {
        eprintln!("skipped: TAPIR_TSP_WINE_DIR is not set (scripts/test sets it)");
        return;
    };
    for tool in ["xvfb-run", "xdotool"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(found, "{tool} is missing (scripts/windows-tsp installs it)");
    }
    let server = Server::start();
    let token = provider_token(&server).await;
    let ws = server.url.replacen("http", "ws", 1);
    let prefix = tokio::task::block_in_place(wine_prefix);
    let dll = windows_path(&artifacts.join("tapir_tsp.dll"));
    let _ = wine(&prefix, &artifacts, &["reg", "delete", &key(), "/f"]);
    tokio::task::block_in_place(|| fresh_wine_session(&prefix));

    let mut session = wine_command("xvfb-run", &prefix)
        .env("WINEPATH", windows_path(&artifacts))
        .args(["-a", "-s", "-screen 0 800x600x24", "sh", "-c"])
        .arg(session_script(&dll, &ws, &token))
        .spawn()
        .expect("run xvfb-run");
    tokio::task::block_in_place(|| {
        wait_with_limit(&mut session, SESSION_LIMIT, "the dialog session")
    });

    let stored = wine(&prefix, &artifacts, &["reg", "query", &key()]);
    let stored = String::from_utf8_lossy(&stored.stdout).into_owned();
    assert!(
        stored.contains(&format!("REG_SZ    {ws}")),
        "the server was not stored: {stored}"
    );
    assert!(stored.contains("Token    REG_BINARY"), "{stored}");
    // `tapir_<id>_<secret>`; the secret is URL-safe base64 and may itself contain `_`.
    let secret = token
        .splitn(3, '_')
        .nth(2)
        .expect("a token has a secret part");
    assert!(secret.len() >= 40, "{token}");
    assert!(
        !stored.contains(secret),
        "the token is stored in clear: {stored}"
    );

    let provider = PROVIDER.to_string();
    let tested = tokio::task::block_in_place(|| {
        wine(
            &prefix,
            &artifacts,
            &[
                "rundll32",
                &format!("{dll},TapirTestConnection"),
                "--provider",
                &provider,
            ],
        )
    });
    let said = String::from_utf8_lossy(&tested.stdout);
    assert!(
        said.contains("connected: 20 lines (20 in service)"),
        "TapirTestConnection said {said:?} {:?}",
        String::from_utf8_lossy(&tested.stderr)
    );
    let _ = wine(&prefix, &artifacts, &["reg", "delete", &key(), "/f"]);
    server.stop();
}
