//! The tour a new user takes: lines, dial, answer on the handset, hold, transfer, drop, and
//! `watch --json` showing every step in order.

mod common;

use common::{Server, wait_for_call, wait_until_gone};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_from_dial_to_drop_through_the_cli() {
    let server = Server::start();

    let lines = server.cli_json(&["lines"]);
    let addresses: Vec<&str> = lines
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["address"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (201..=220).map(|n| n.to_string()).collect();
    assert_eq!(addresses, expected);
    let table = server.cli_ok(&["lines"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains("Extension 217"), "{table}");

    let dialled = server.cli_json(&["dial", "201", "202"]);
    let a = dialled["call"].as_u64().expect("dial returns the new call");

    let ringing = wait_for_call(&server, "offering at 202", |c| {
        c.state == "offering" && c.called.number.as_deref() == Some("202")
    })
    .await;
    assert_eq!(ringing.caller.number.as_deref(), Some("201"), "{ringing:?}");
    assert_eq!(ringing.origin, "internal");
    assert!(ringing.features.contains(&"answer".to_string()));
    let b = ringing.id;
    wait_for_call(&server, "ringback at 201", |c| {
        c.id == a && c.state == "ringback"
    })
    .await;

    server.cli_ok(&["sim", "answer", "202"]);
    let talking = wait_for_call(&server, "connected at 201", |c| {
        c.id == a && c.state == "connected"
    })
    .await;
    assert_eq!(talking.connected.number.as_deref(), Some("202"));
    wait_for_call(&server, "connected at 202", |c| {
        c.id == b && c.state == "connected"
    })
    .await;

    server.cli_ok(&["hold", &a.to_string()]);
    let held = wait_for_call(&server, "on hold", |c| c.id == a && c.state == "onhold").await;
    assert!(held.features.contains(&"unhold".to_string()));
    let refused = server.cli(&["hold", &a.to_string()]);
    assert!(!refused.status.success(), "holding a held call must fail");
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("invalid_call_state"), "{why}");
    server.cli_ok(&["unhold", &a.to_string()]);
    wait_for_call(&server, "back from hold", |c| {
        c.id == a && c.state == "connected"
    })
    .await;

    // 201 transfers 202 to 203: 201's call ends, 203 rings with 202 as the caller.
    server.cli_ok(&["transfer", &a.to_string(), "203"]);
    wait_until_gone(&server, "the transferred call", |c| c.id == a).await;
    let at_203 = wait_for_call(&server, "offering at 203", |c| {
        c.state == "offering" && c.called.number.as_deref() == Some("203")
    })
    .await;
    assert_eq!(at_203.reason, "transfer");
    assert_eq!(at_203.caller.number.as_deref(), Some("202"));
    server.cli_ok(&["sim", "answer", "203"]);
    wait_for_call(&server, "202 talking to 203", |c| {
        c.id == b && c.state == "connected" && c.connected.number.as_deref() == Some("203")
    })
    .await;

    server.cli_ok(&["drop", &b.to_string()]);
    wait_until_gone(&server, "any call", |_| true).await;

    // The whole story, replayed from the start, in order and without gaps.
    let events = server.all_events();
    for (i, pair) in events.windows(2).enumerate() {
        assert_eq!(
            pair[1]["seq"].as_u64(),
            pair[0]["seq"].as_u64().map(|s| s + 1),
            "gap at {i}"
        );
    }
    let states_of = |call: u64| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["call"]["id"].as_u64() == Some(call))
            .filter(|e| e["event"] == "call_new" || e["event"] == "call_state")
            .map(|e| e["call"]["state"].as_str().unwrap().to_owned())
            .collect()
    };
    let first_event_of = |call: u64| {
        events
            .iter()
            .find(|e| e["call"]["id"].as_u64() == Some(call))
            .map(|e| e["event"].clone())
    };
    assert_eq!(first_event_of(a), Some(Value::from("call_new")));
    assert_eq!(first_event_of(b), Some(Value::from("call_new")));
    let a_states = states_of(a);
    assert_eq!(
        a_states
            .iter()
            .filter(|s| !matches!(s.as_str(), "dialing" | "proceeding"))
            .cloned()
            .collect::<Vec<_>>(),
        ["ringback", "connected", "onhold", "connected", "idle"],
        "states of the dialling call: {a_states:?}"
    );
    assert_eq!(states_of(b).first().map(String::as_str), Some("offering"));
    assert_eq!(states_of(b).last().map(String::as_str), Some("idle"));
}

#[test]
fn check_config_explains_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[[instances]]\nname = \"office\"\n[instances.driver]\ntype = \"sim\"\nextensions = 5\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::BIN)
        .arg("check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("OK") && text.contains("office"), "{text}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[instances]]\nname = \"office\"\n[instances.driver]\ntype = \"sim\"\nextensionz = 5\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::BIN)
        .arg("check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("extensionz") && text.contains("bad.toml"),
        "{text}"
    );
}
