//! Accounts end to end: logins and their limit, tokens and their revocation (also of an open
//! WebSocket), rights that change under a live session, tsecimp import and export, TLS.

mod common;

use common::{PATIENCE, Server, Ws, line_of, request_as};
use reqwest::Method;
use serde_json::{Value, json};
use tapir_wire::ServerMessage;

const CONFIG: &str = r#"
[[instances]]
name = "office"
tenant = "acme"
mode = "terminal_server"
[instances.driver]
type = "sim"
extensions = 6
first_extension = 201
"#;

async fn admin(server: &Server, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    request_as(&server.token, method, &server.api(path), body).await
}

async fn add_user(server: &Server, name: &str, password: &str) {
    let body = json!({"name": name, "tenant": "acme", "password": password});
    let (status, answer) = admin(server, Method::POST, "/users", Some(body)).await;
    assert_eq!(status, 201, "{answer}");
}

async fn login(server: &Server, user: &str, password: &str) -> (u16, Value) {
    let body = json!({"user": user, "password": password});
    request_as("", Method::POST, &server.api("/login"), Some(body)).await
}

async fn token_of(server: &Server, user: &str, password: &str) -> String {
    let (status, answer) = login(server, user, password).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["user"]["name"], user);
    answer["token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn logins_are_checked_limited_and_never_echo_the_password() {
    let server = Server::with_config(CONFIG);
    add_user(&server, "alice", "correct horse").await;
    let token = token_of(&server, "alice", "correct horse").await;
    let (status, me) = request_as(&token, Method::GET, &server.api("/me"), None).await;
    assert_eq!((status, me["user"]["name"].as_str()), (200, Some("alice")));
    assert!(!me.to_string().contains("correct horse"));

    let (status, wrong) = login(&server, "alice", "battery staple").await;
    assert_eq!(
        (status, wrong["error"].as_str()),
        (401, Some("unauthenticated"))
    );
    let (_, unknown) = login(&server, "nobody", "battery staple").await;
    assert_eq!(
        wrong["message"], unknown["message"],
        "a wrong password and an unknown user read the same"
    );
    for _ in 0..4 {
        login(&server, "alice", "battery staple").await;
    }
    let (status, limited) = login(&server, "alice", "correct horse").await;
    assert_eq!(
        (status, limited["error"].as_str()),
        (429, Some("rate_limited")),
        "even the right password waits after five failures: {limited}"
    );
    // The earlier token still works: limiting logins does not end sessions.
    let (status, _) = request_as(&token, Method::GET, &server.api("/lines"), None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn requests_without_valid_credentials_are_refused() {
    let server = Server::with_config(CONFIG);
    for token in ["", "garbage", "tapir_1_notthesecret", "tapir_999_abc"] {
        let (status, body) = request_as(token, Method::GET, &server.api("/lines"), None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("unauthenticated")),
            "{token:?}: {body}"
        );
    }
    let (status, _) = request_as("", Method::GET, &format!("{}/healthz", server.url), None).await;
    assert_eq!(status, 200, "health needs no credentials");
    let out = server.cli_as("tapir_1_wrong", &["lines"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tapir login"),
        "the CLI says what to do: {stderr}"
    );
}

#[tokio::test]
async fn a_revoked_or_expired_token_stops_working_and_ends_its_websocket() {
    let server = Server::with_config(CONFIG);
    add_user(&server, "app", "application secret").await;
    let body = json!({"user": "app", "label": "crm"});
    let (status, issued) = admin(&server, Method::POST, "/tokens", Some(body)).await;
    assert_eq!(status, 201, "{issued}");
    let token = issued["token"].as_str().unwrap().to_owned();
    let id = issued["id"].as_i64().unwrap();

    let mut ws = Ws::connect_as(&server, &token).await;
    ws.send(json!({"type": "subscribe"})).await;
    assert!(matches!(ws.next().await, ServerMessage::Snapshot(_)));

    let (status, _) = admin(&server, Method::DELETE, &format!("/tokens/{id}"), None).await;
    assert_eq!(status, 204);
    match ws.next().await {
        ServerMessage::Error { error } => assert_eq!(error.error, "unauthenticated"),
        other => panic!("expected the session to end, got {other:?}"),
    }
    let (status, _) = request_as(&token, Method::GET, &server.api("/lines"), None).await;
    assert_eq!(status, 401);

    // Expiry counts in whole seconds: a one-second token issued late in a second is already
    // expired a moment later on a busy machine, so the short token lives three.
    let body = json!({"user": "app", "label": "short", "lifetime_s": 3});
    let (_, issued) = admin(&server, Method::POST, "/tokens", Some(body)).await;
    let short = issued["token"].as_str().unwrap().to_owned();
    let (status, _) = request_as(&short, Method::GET, &server.api("/me"), None).await;
    assert_eq!(status, 200);
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let (status, _) = request_as(&short, Method::GET, &server.api("/me"), None).await;
        if status == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the token never expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_assignment_shows_at_once_in_an_open_session() {
    let server = Server::with_config(CONFIG);
    add_user(&server, "bob", "bob's password").await;
    let token = token_of(&server, "bob", "bob's password").await;
    let mut ws = Ws::connect_as(&server, &token).await;
    ws.send(json!({"type": "subscribe"})).await;
    let ServerMessage::Snapshot(before) = ws.next().await else {
        panic!("expected a snapshot");
    };
    assert!(before.lines.is_empty(), "bob has no lines yet");

    let line = line_of(&server, "203").await;
    let path = format!("/users/bob/lines/{line}");
    let (status, body) = admin(&server, Method::PUT, &path, Some(json!({}))).await;
    assert_eq!(status, 200, "{body}");
    let ServerMessage::Snapshot(after) = ws.next().await else {
        panic!("expected a fresh snapshot after the assignment");
    };
    let ids: Vec<u32> = after.lines.iter().map(|l| l.id).collect();
    assert_eq!(ids, vec![line]);

    let (status, _) = admin(&server, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let ServerMessage::Snapshot(gone) = ws.next().await else {
        panic!("expected a fresh snapshot after the unassignment");
    };
    assert!(gone.lines.is_empty());
}

const TSEC: &str = r#"<UserList>
  <User NoMerge=1>
    <DomainUser>ACME\carol</DomainUser>
    <FriendlyName>Carol</FriendlyName>
    <LineList>
      <Line><Address>201</Address></Line>
      <Line><Address>202</Address></Line>
    </LineList>
  </User>
  <User>
    <DomainUser>ACME\dave</DomainUser>
    <LineList>
      <Line><Address>203</Address></Line>
    </LineList>
  </User>
</UserList>
"#;

fn assignments(server: &Server) -> Vec<(String, u64, String)> {
    let all = server.cli_json(&["assignments"]);
    let mut list: Vec<(String, u64, String)> = all
        .as_array()
        .expect("a list")
        .iter()
        .map(|a| {
            (
                a["user"].as_str().unwrap().to_owned(),
                a["line"].as_u64().unwrap(),
                a["right"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    list.sort();
    list
}

#[tokio::test]
async fn tsecimp_round_trips_and_a_bad_file_changes_nothing() {
    let server = Server::with_config(CONFIG);
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.xml");
    std::fs::write(&first, TSEC).unwrap();
    let imported = server.cli_json(&["tsecimp", "import", first.to_str().unwrap()]);
    assert_eq!(imported["lines_given"], 3, "{imported}");
    assert_eq!(
        imported["users_created"],
        json!(["ACME\\carol", "ACME\\dave"])
    );
    let after_first = assignments(&server);
    let (l201, l203) = (line_of(&server, "201").await, line_of(&server, "203").await);
    assert!(after_first.contains(&("ACME\\carol".into(), u64::from(l201), "control".into())));
    assert!(after_first.contains(&("ACME\\dave".into(), u64::from(l203), "control".into())));

    let exported = server.cli_ok(&["tsecimp", "export"]);
    assert!(
        exported.contains("<FriendlyName>Carol</FriendlyName>"),
        "{exported}"
    );
    // Importing the export again, after the assignments changed, restores them exactly.
    server.cli_ok(&["unassign", "ACME\\carol", &l201.to_string()]);
    server.cli_ok(&[
        "assign",
        "ACME\\dave",
        &line_of(&server, "205").await.to_string(),
    ]);
    let second = dir.path().join("second.xml");
    std::fs::write(&second, &exported).unwrap();
    server.cli_json(&["tsecimp", "import", second.to_str().unwrap()]);
    assert_eq!(assignments(&server), after_first);
    assert_eq!(server.cli_ok(&["tsecimp", "export"]), exported);

    let bad = dir.path().join("bad.xml");
    std::fs::write(
        &bad,
        "<UserList>\n  <User>\n    <DomainUser>ACME\\erin</DomainUser>\n    <LineList>\n      \
         <Line><Address>299</Address></Line>\n      <Line><PermanentID>x1</PermanentID></Line>\n    \
         </LineList>\n  </User>\n  <User><FriendlyName>no name</FriendlyName></User>\n</UserList>\n",
    )
    .unwrap();
    let out = server.cli(&["tsecimp", "import", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    assert!(
        stderr.contains("line 6"),
        "the bad PermanentID is placed: {stderr}"
    );
    assert!(
        stderr.contains("line 9"),
        "the user without DomainUser is placed: {stderr}"
    );
    let unknown = dir.path().join("unknown.xml");
    std::fs::write(
        &unknown,
        "<UserList>\n<User>\n<DomainUser>ACME\\erin</DomainUser>\n<LineList>\n\
         <Line><Address>299</Address></Line>\n</LineList>\n</User>\n</UserList>\n",
    )
    .unwrap();
    let out = server.cli(&["tsecimp", "import", unknown.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 5") && stderr.contains("no line with address \"299\""),
        "{stderr}"
    );
    assert_eq!(
        assignments(&server),
        after_first,
        "a bad file changes nothing"
    );
    let users = server.cli_json(&["user", "list"]);
    assert!(!users.to_string().contains("erin"), "{users}");
}

#[tokio::test]
async fn the_api_and_the_cli_work_over_tls_with_a_self_signed_certificate() {
    let (server, cert, _tls_dir) = Server::with_self_signed_tls(CONFIG);

    let trusted = std::process::Command::new(common::BIN)
        .args(["--json", "lines"])
        .env("TAPIR_SERVER", &server.url)
        .env("TAPIR_TOKEN", &server.token)
        .env("TAPIR_CA_FILE", &cert)
        .output()
        .unwrap();
    assert!(trusted.status.success(), "{trusted:?}");
    assert!(String::from_utf8_lossy(&trusted.stdout).contains("\"201\""));
    let watched = std::process::Command::new(common::BIN)
        .args(["--json", "watch", "--count", "0"])
        .env("TAPIR_SERVER", &server.url)
        .env("TAPIR_TOKEN", &server.token)
        .env("TAPIR_CA_FILE", &cert)
        .output()
        .unwrap();
    assert!(watched.status.success(), "wss works: {watched:?}");

    let untrusted = std::process::Command::new(common::BIN)
        .args(["lines"])
        .env("TAPIR_SERVER", &server.url)
        .env("TAPIR_TOKEN", &server.token)
        .env_remove("TAPIR_CA_FILE")
        .output()
        .unwrap();
    assert!(!untrusted.status.success());
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(stderr.contains("certificate"), "says why: {stderr}");
}

#[tokio::test]
async fn a_resumed_session_replays_the_events_of_its_own_lines_only() {
    let server = Server::with_config(CONFIG);
    add_user(&server, "erin", "erin's password").await;
    let token = token_of(&server, "erin", "erin's password").await;
    let (mine, other) = (line_of(&server, "201").await, line_of(&server, "203").await);
    let path = format!("/users/erin/lines/{mine}");
    admin(
        &server,
        Method::PUT,
        &path,
        Some(json!({"right": "monitor"})),
    )
    .await;
    for (from, to) in [(mine, "202"), (other, "204")] {
        let body = json!({"to": to});
        let (status, answer) = admin(
            &server,
            Method::POST,
            &format!("/lines/{from}/calls"),
            Some(body),
        )
        .await;
        assert_eq!(status, 201, "{answer}");
    }
    let mut ws = Ws::connect_as(&server, &token).await;
    ws.send(json!({"type": "subscribe", "since": 0})).await;
    let seen = ws
        .until(|m| {
            matches!(m, ServerMessage::Event(e) if matches!(&e.event,
            tapir_wire::EventDto::CallNew { call } if call.line == mine))
        })
        .await;
    for message in &seen {
        if let ServerMessage::Event(event) = message {
            let text = serde_json::to_string(event).unwrap();
            assert!(
                !text.contains(&format!("\"line\":{other},")) && !text.contains("\"204\""),
                "erin sees only her line: {text}"
            );
        }
    }
}
