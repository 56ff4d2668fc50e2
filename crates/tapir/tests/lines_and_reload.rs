//! Line identity and operations: dynamic lines, defunct lines and purging, name templates,
//! live reconfiguration, connection tests and log levels.

mod common;

use common::{Server, get_json, line_of, lines, post_json, wait_for_call};
use serde_json::{Value, json};

fn sim_instance(name: &str, first: u32, count: u32, line_name: Option<&str>) -> String {
    let line_name = line_name
        .map(|t| format!("line_name = \"{t}\"\n"))
        .unwrap_or_default();
    format!(
        "[[instances]]\nname = \"{name}\"\n{line_name}[instances.driver]\ntype = \"sim\"\n\
         extensions = {count}\nfirst_extension = {first}\n"
    )
}

async fn line_json(server: &Server, id: u32) -> Value {
    let (status, line) = get_json(server, &server.api(&format!("/lines/{id}"))).await;
    assert_eq!(status, 200, "{line}");
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_appear_vanish_return_with_their_id_and_are_purged() {
    let server = Server::start();
    server.cli_ok(&[
        "sim",
        "add-extension",
        "sim",
        "250",
        "--name",
        "Grace Hopper",
    ]);
    let id = line_of(&server, "250").await;
    let line = line_json(&server, id).await;
    assert_eq!(
        (line["name"].as_str(), line["status"].as_str()),
        (Some("Grace Hopper"), Some("in_service"))
    );

    server.cli_ok(&["sim", "remove-extension", "sim", "250"]);
    let gone = line_json(&server, id).await;
    assert_eq!(gone["status"], "defunct", "{gone}");
    assert_eq!(
        gone["name"], "Grace Hopper",
        "a defunct line keeps its name"
    );
    let (status, body) = post_json(
        &server,
        &server.api(&format!("/lines/{id}/calls")),
        json!({"to": "201"}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("invalid_line_state")),
        "{body}"
    );

    server.cli_ok(&["sim", "add-extension", "sim", "250"]);
    assert_eq!(
        line_of(&server, "250").await,
        id,
        "a returning device gets its old id"
    );
    assert_eq!(line_json(&server, id).await["status"], "in_service");

    // Only defunct lines can be purged; a purged id is never handed out again.
    let refused = server.cli(&["lines", "purge", "250"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("only defunct"));
    server.cli_ok(&["sim", "remove-extension", "sim", "250"]);
    let purged = server.cli_json(&["lines", "purge", "--all-defunct"]);
    assert_eq!(purged["purged"], json!([id]));
    assert!(lines(&server).await.iter().all(|l| l.id != id));
    server.cli_ok(&["sim", "add-extension", "sim", "250"]);
    let new_id = line_of(&server, "250").await;
    assert!(new_id > id, "id {id} was reused as {new_id}");

    // Every step reached subscribers in order.
    let events = server.all_events();
    let kinds: Vec<String> = events
        .iter()
        .filter(|e| {
            e["line"]["id"] == json!(id)
                || e["line"] == json!(id)
                || e["line"]["id"] == json!(new_id)
        })
        .map(|e| e["event"].as_str().unwrap_or_default().to_owned())
        .filter(|k| k.starts_with("line_"))
        .collect();
    assert_eq!(
        kinds,
        [
            "line_created",
            "line_removed",
            "line_created",
            "line_removed",
            "line_purged",
            "line_created"
        ],
        "{events:#?}"
    );
}

#[tokio::test]
async fn line_names_follow_the_instance_template() {
    let config = sim_instance("office", 201, 3, Some("extension - name"))
        + &sim_instance("lab", 301, 2, Some("%i: %e (%d)"));
    let server = Server::with_config(&config);
    // Ids (and so the listing order) depend on which instance reported first: sort by name.
    let mut names: Vec<String> = lines(&server).await.into_iter().map(|l| l.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "201 - Extension 201",
            "202 - Extension 202",
            "203 - Extension 203",
            "lab: 301 (Extension 301)",
            "lab: 302 (Extension 302)"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_changes_and_removes_instances_and_leaves_the_others_alone() {
    let first = sim_instance("keep", 201, 5, None)
        + &sim_instance("change", 301, 3, None)
        + &sim_instance("drop", 401, 3, None);
    let server = Server::with_config(&first);
    let config_path = server.data_dir.join("tapir.toml");

    // A call on the instance that will stay untouched.
    let from = line_of(&server, "201").await;
    let (_, body) = post_json(
        &server,
        &server.api(&format!("/lines/{from}/calls")),
        json!({"to": "202"}),
    )
    .await;
    let call = body["call"].as_u64().unwrap();
    let ringing = wait_for_call(&server, "ringing at 202", |c| c.state == "offering").await;
    post_json(
        &server,
        &server.api(&format!("/calls/{}/answer", ringing.id)),
        json!({}),
    )
    .await;
    wait_for_call(&server, "connected", |c| {
        c.id == call && c.state == "connected"
    })
    .await;
    let change_ids: Vec<u32> = lines(&server)
        .await
        .iter()
        .filter(|l| l.instance == "change")
        .map(|l| l.id)
        .collect();

    // A broken config is refused whole.
    std::fs::write(
        &config_path,
        first.clone() + "[[instances]]\nname = \"keep\"\n",
    )
    .unwrap();
    let refused = server.cli(&["reload"]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("tapir.toml"), "{why}");
    assert_eq!(lines(&server).await.len(), 11, "nothing changed");

    let second = sim_instance("keep", 201, 5, None)
        + &sim_instance("change", 301, 3, Some("%i %e"))
        + &sim_instance("new", 501, 2, None);
    std::fs::write(&config_path, second).unwrap();
    let report = server.cli_json(&["reload"]);
    assert_eq!(
        report,
        json!({"added": ["new"], "removed": ["drop"], "restarted": ["change"], "unchanged": ["keep"]})
    );

    let after = lines(&server).await;
    assert!(
        after.iter().all(|l| l.instance != "drop"),
        "the removed instance's lines are gone"
    );
    assert_eq!(after.iter().filter(|l| l.instance == "new").count(), 2);
    let changed: Vec<(u32, String)> = {
        let mut found = Vec::new();
        for _ in 0..200 {
            found = lines(&server)
                .await
                .into_iter()
                .filter(|l| l.instance == "change" && l.status == "in_service")
                .map(|l| (l.id, l.name))
                .collect();
            if found.len() == 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        found
    };
    assert_eq!(
        changed.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        change_ids,
        "a restarted instance keeps its line ids"
    );
    assert_eq!(changed[0].1, "change 301");

    let still = wait_for_call(&server, "still connected", |c| c.id == call).await;
    assert_eq!(
        still.state, "connected",
        "the untouched instance kept its call"
    );

    // SIGHUP reloads too.
    std::fs::write(&config_path, sim_instance("keep", 201, 5, None)).unwrap();
    let pid = server_pid(&server);
    std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    for _ in 0..300 {
        if lines(&server).await.iter().all(|l| l.instance == "keep") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(lines(&server).await.iter().all(|l| l.instance == "keep"));
}

fn server_pid(server: &Server) -> u32 {
    server.pid()
}

#[test]
fn instance_tests_and_log_levels() {
    let server = Server::with_config(&sim_instance("office", 201, 7, None));
    let report = server.cli_json(&["instance", "test", "office"]);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["devices"], 7);
    assert!(
        report["summary"].as_str().unwrap().contains("7 extensions"),
        "{report}"
    );
    let text = server.cli_ok(&["instance", "test", "office"]);
    assert!(text.starts_with("office: OK"), "{text}");

    let missing = server.cli(&["instance", "test", "nowhere"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no instance named"));

    server.cli_ok(&["instance", "log", "office", "debug"]);
    server.cli_ok(&["instance", "log", "office", "default"]);
    let bad = server.cli(&["instance", "log", "office", "loud"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown log level"));
}

#[test]
fn an_unreachable_pbx_is_reported_precisely() {
    // Nothing listens on this port: find a free one and release it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = sim_instance("office", 201, 2, None)
        + &format!(
            "[[instances]]\nname = \"pbx\"\n[instances.driver]\ntype = \"asterisk\"\n\
             host = \"127.0.0.1\"\nport = {port}\nusername = \"tapir\"\nsecret = \"s3cret\"\n"
        );
    let server = Server::with_config(&config);
    let out = server.cli(&["--json", "instance", "test", "pbx"]);
    assert!(!out.status.success(), "the test must fail");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let summary = report["summary"].as_str().unwrap();
    assert!(summary.contains(&format!("127.0.0.1:{port}")), "{summary}");
    assert!(
        !summary.contains("s3cret"),
        "the secret never shows: {summary}"
    );

    let instances = server.cli_json(&["instances"]);
    let pbx = instances
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "pbx")
        .unwrap();
    assert_ne!(pbx["status"], "up", "{pbx}");
    // The simulated instance works regardless.
    assert_eq!(server.cli_json(&["instance", "test", "office"])["ok"], true);
}

#[tokio::test]
async fn a_protocol_trace_records_the_pbx_traffic_while_switched_on() {
    let server = Server::with_config(&sim_instance("office", 201, 3, None));
    let trace_dir = server.data_dir.join("trace");
    let traced = || -> String {
        std::fs::read_dir(&trace_dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .collect::<Vec<_>>()
                    .join("")
            })
            .unwrap_or_default()
    };
    let line = line_of(&server, "201").await;
    post_json(
        &server,
        &server.api(&format!("/lines/{line}/calls")),
        json!({"to": "202"}),
    )
    .await;
    assert!(
        !traced().contains("MakeCall"),
        "nothing is traced before it is switched on"
    );

    server.cli_ok(&["instance", "trace", "office", "on"]);
    post_json(
        &server,
        &server.api(&format!("/lines/{line}/calls")),
        json!({"to": "203"}),
    )
    .await;
    let mut text = String::new();
    for _ in 0..250 {
        text = traced();
        if text.contains("MakeCall") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(text.contains("MakeCall") && text.contains("203"), "{text}");
    assert!(text.contains("office"), "lines name their instance: {text}");
    assert!(
        text.contains("direction=\"in\"") || text.contains("direction=in"),
        "{text}"
    );
    server.cli_ok(&["instance", "trace", "office", "off"]);
    let missing = server.cli(&["instance", "trace", "nowhere", "on"]);
    assert!(!missing.status.success());
}
