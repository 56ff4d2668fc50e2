//! Call control and errors through the REST API of a running server.

mod common;

use common::{Server, get_json, line_of, post_json, post_raw, wait_for_call, wait_until_gone};
use serde_json::json;

async fn call_between(server: &Server, from: &str, to: &str) -> (u64, u64) {
    let line = line_of(server, from).await;
    let (status, body) = post_json(
        server,
        &server.api(&format!("/lines/{line}/calls")),
        json!({"to": to}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let a = body["call"].as_u64().expect("new call id");
    let b = wait_for_call(server, "ringing", |c| {
        c.state == "offering" && c.called.number.as_deref() == Some(to)
    })
    .await
    .id;
    (a, b)
}

async fn act(
    server: &Server,
    call: u64,
    action: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    post_json(
        server,
        &server.api(&format!("/calls/{call}/{action}")),
        body,
    )
    .await
}

#[tokio::test]
async fn answer_consult_and_complete_transfer() {
    let server = Server::start();
    let (a, b) = call_between(&server, "201", "202").await;
    let (status, body) = act(&server, b, "answer", json!({})).await;
    assert_eq!(status, 200, "{body}");
    wait_for_call(&server, "connected", |c| {
        c.id == a && c.state == "connected"
    })
    .await;

    // 202 consults 203, 203 answers, 202 completes: 201 and 203 talk.
    let (status, body) = act(&server, b, "consult", json!({"to": "203"})).await;
    assert_eq!(status, 200, "{body}");
    let consult = body["call"].as_u64().expect("consultation call id");
    let original = wait_for_call(&server, "on consultation hold", |c| c.id == b).await;
    assert_eq!(original.state, "onholdpendtransfer");
    assert_eq!(original.related, Some(consult));
    let at_203 = wait_for_call(&server, "ringing at 203", |c| {
        c.state == "offering" && c.called.number.as_deref() == Some("203")
    })
    .await;
    act(&server, at_203.id, "answer", json!({})).await;
    let ready = wait_for_call(&server, "consult connected", |c| {
        c.id == consult && c.state == "connected"
    })
    .await;
    assert!(
        ready.features.contains(&"complete_transfer".into()),
        "{ready:?}"
    );
    let (status, body) = act(&server, b, "complete-transfer", json!({})).await;
    assert_eq!(status, 200, "{body}");
    wait_until_gone(&server, "on 202", |c| c.id == b || c.id == consult).await;
    let a_now = wait_for_call(&server, "201 talking to 203", |c| {
        c.id == a && c.connected.number.as_deref() == Some("203")
    })
    .await;
    assert_eq!(a_now.state, "connected");
}

#[tokio::test]
async fn conference_of_three() {
    let server = Server::start();
    let (a, b) = call_between(&server, "204", "205").await;
    act(&server, b, "answer", json!({})).await;
    wait_for_call(&server, "connected", |c| {
        c.id == a && c.state == "connected"
    })
    .await;
    let (_, body) = act(&server, a, "consult", json!({"to": "206"})).await;
    let consult = body["call"].as_u64().unwrap();
    let ringing = wait_for_call(&server, "ringing at 206", |c| {
        c.called.number.as_deref() == Some("206") && c.state == "offering"
    })
    .await;
    act(&server, ringing.id, "answer", json!({})).await;
    wait_for_call(&server, "consult connected", |c| {
        c.id == consult && c.state == "connected"
    })
    .await;
    let (status, body) = act(&server, consult, "conference", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let parent = body["call"].as_u64().expect("conference call id");
    for member in [a, consult] {
        let m = wait_for_call(&server, "conferenced", |c| {
            c.id == member && c.state == "conferenced"
        })
        .await;
        assert_eq!(m.conference, Some(parent));
    }
    act(&server, parent, "drop", json!({})).await;
    wait_until_gone(&server, "any call", |_| true).await;
}

#[tokio::test]
async fn pickup_redirect_forward_and_dnd() {
    let server = Server::start();
    let l210 = line_of(&server, "210").await;
    let (_, b) = call_between(&server, "207", "208").await;
    let (status, body) = post_json(
        &server,
        &server.api(&format!("/calls/{b}/pickup")),
        json!({"line": l210}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let picked = body["call"].as_u64().unwrap();
    let taken = wait_for_call(&server, "picked up", |c| {
        c.id == picked && c.state == "connected"
    })
    .await;
    assert_eq!(taken.reason, "pickup");
    wait_until_gone(&server, "ringing at 208", |c| c.id == b).await;
    act(&server, picked, "drop", json!({})).await;
    wait_until_gone(&server, "any call", |_| true).await;

    let (_, b) = call_between(&server, "207", "208").await;
    let (status, _) = act(&server, b, "redirect", json!({"to": "209"})).await;
    assert_eq!(status, 200);
    let l209 = line_of(&server, "209").await;
    let moved = wait_for_call(&server, "ringing at 209", |c| {
        c.line == l209 && c.state == "offering"
    })
    .await;
    assert_eq!(moved.reason, "redirect");
    assert_eq!(
        moved.called.number.as_deref(),
        Some("208"),
        "the number the caller dialled"
    );
    assert_eq!(moved.redirecting.number.as_deref(), Some("208"));
    act(&server, moved.id, "drop", json!({})).await;
    wait_until_gone(&server, "any call", |_| true).await;

    let l208 = line_of(&server, "208").await;
    let response = server
        .http()
        .put(server.api(&format!("/lines/{l208}/forwards")))
        .json(&json!({"forwards": [{"mode": "unconditional", "destination": "211"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, line) = get_json(&server, &server.api(&format!("/lines/{l208}"))).await;
    assert_eq!(line["forwards"][0]["destination"], "211", "{line}");
    let l207 = line_of(&server, "207").await;
    post_json(
        &server,
        &server.api(&format!("/lines/{l207}/calls")),
        json!({"to": "208"}),
    )
    .await;
    let forwarded = wait_for_call(&server, "forwarded to 211", |c| {
        c.line != l207 && c.state == "offering"
    })
    .await;
    assert_eq!(forwarded.reason, "forward_unconditional");
    assert_eq!(forwarded.called.number.as_deref(), Some("208"));

    let l212 = line_of(&server, "212").await;
    let response = server
        .http()
        .put(server.api(&format!("/lines/{l212}/dnd")))
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let l213 = line_of(&server, "213").await;
    let (_, body) = post_json(
        &server,
        &server.api(&format!("/lines/{l213}/calls")),
        json!({"to": "212"}),
    )
    .await;
    let refused = body["call"].as_u64().unwrap();
    let busy = wait_for_call(&server, "busy", |c| c.id == refused && c.state == "busy").await;
    assert_eq!(busy.features, vec!["drop"]);
}

#[tokio::test]
async fn errors_are_precise_and_typed() {
    let server = Server::start();
    let l201 = line_of(&server, "201").await;

    let (status, body) = post_json(
        &server,
        &server.api("/lines/999999/calls"),
        json!({"to": "202"}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("invalid_line")),
        "{body}"
    );
    assert_eq!(body["lineerr"], 0x8000_0002u32);

    let (status, body) = post_raw(
        &server,
        &server.api(&format!("/lines/{l201}/calls")),
        "{\"to\":",
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
    assert!(body["message"].as_str().unwrap().contains("invalid JSON"));

    let (status, body) = post_json(
        &server,
        &server.api(&format!("/lines/{l201}/calls")),
        json!({"to": "202", "x": 1}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains('x'), "{body}");

    let (status, body) = post_json(
        &server,
        &server.api(&format!("/lines/{l201}/calls")),
        json!({"to": "  "}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("invalid_address")),
        "{body}"
    );

    let (status, body) = post_json(
        &server,
        &server.api(&format!("/lines/{l201}/calls")),
        json!({"to": "20x2"}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("invalid_address")),
        "{body}"
    );

    let (status, body) = get_json(&server, &server.api("/calls/abc")).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = get_json(&server, &server.api("/calls/77")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, body) = act(&server, 77, "answer", json!({})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("invalid_call")),
        "{body}"
    );

    let (a, _) = call_between(&server, "201", "202").await;
    let (status, body) = act(&server, a, "answer", json!({})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("invalid_call_state")),
        "{body}"
    );
    assert_eq!(body["lineerr"], 0x8000_001Cu32);
    assert!(
        body["message"].as_str().unwrap().contains("ringback"),
        "{body}"
    );
    let (status, body) = act(&server, a, "teleport", json!({})).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["message"].as_str().unwrap().contains("teleport"));
    let (status, body) = act(&server, a, "transfer", json!({})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = get_json(&server, &format!("{}/api/v2/lines", server.url)).await;
    assert_eq!(status, 404, "{body}");

    // After all that the server still works.
    let (status, _) = act(&server, a, "drop", json!({})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn health_metrics_and_openapi() {
    let server = Server::start();
    let (status, health) = get_json(&server, &format!("{}/healthz", server.url)).await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert!(
        health.get("instances").is_none(),
        "unauthenticated health names nothing: {health}"
    );
    let (status, instances) = get_json(&server, &server.api("/instances")).await;
    assert_eq!(status, 200);
    assert_eq!(instances[0]["status"], "up", "{instances}");

    let line = line_of(&server, "201").await;
    post_json(
        &server,
        &server.api(&format!("/lines/{line}/calls")),
        json!({"to": "202"}),
    )
    .await;
    let metrics = server
        .http()
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("tapir_commands_total"), "{text}");
    assert!(text.contains("tapir_events_total"), "{text}");

    let (status, doc) = get_json(&server, &server.api("/openapi.json")).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/lines",
        "/api/v1/lines/{id}/calls",
        "/api/v1/calls/{id}/{action}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} undocumented");
    }
}

#[tokio::test]
async fn dtmf_digits_on_a_connected_call() {
    let server = Server::start();
    let (a, b) = call_between(&server, "214", "215").await;
    let (status, body) = act(&server, a, "digits", json!({"digits": "12"})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("invalid_call_state")),
        "{body}"
    );
    act(&server, b, "answer", json!({})).await;
    let talking = wait_for_call(&server, "connected", |c| {
        c.id == a && c.state == "connected"
    })
    .await;
    assert!(talking.features.contains(&"generate_digits".to_string()));
    let (status, body) = act(&server, a, "digits", json!({"digits": "12 34#*"})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = act(&server, a, "digits", json!({"digits": "12x"})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("invalid_param")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("position 3"),
        "{body}"
    );
    let out = server.cli(&["digits", &a.to_string(), "99"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn an_offered_call_can_be_accepted_then_answered() {
    let server = Server::start();
    let (a, b) = call_between(&server, "216", "217").await;
    let (status, body) = act(&server, b, "accept", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let accepted = wait_for_call(&server, "accepted", |c| c.id == b && c.state == "accepted").await;
    assert!(!accepted.features.contains(&"accept".to_string()));
    assert!(accepted.features.contains(&"answer".to_string()));
    let (status, body) = act(&server, b, "accept", json!({})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("invalid_call_state")),
        "{body}"
    );
    let out = server.cli(&["answer", &b.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for_call(&server, "connected", |c| {
        c.id == a && c.state == "connected"
    })
    .await;
}

#[tokio::test]
async fn park_over_rest_and_unpark_with_the_cli() {
    let server = Server::start();
    let (a, b) = call_between(&server, "212", "213").await;
    act(&server, b, "answer", json!({})).await;
    wait_for_call(&server, "connected", |c| {
        c.id == a && c.state == "connected"
    })
    .await;
    let (status, body) = act(&server, b, "park", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["parked_at"], "701", "{body}");
    wait_until_gone(&server, "the parker's call", |c| c.id == b).await;
    let waiting = wait_for_call(&server, "the parked caller", |c| {
        c.id == a && c.connected.number.as_deref() == Some("701")
    })
    .await;
    assert_eq!(waiting.state, "connected");

    // Nothing waits at 702; an unknown place is refused before it reaches the PBX.
    let (status, body) = post_json(
        &server,
        &server.api(&format!("/lines/{}/unpark", line_of(&server, "214").await)),
        json!({"from": "702"}),
    )
    .await;
    assert_eq!(body["error"], "target_not_found", "{status} {body}");
    let (_, body) = act(&server, a, "park", json!({"to": "7 0"})).await;
    assert_eq!(body["error"], "invalid_address", "{body}");

    let out = server.cli_ok(&["unpark", "214", "701"]);
    assert!(out.starts_with("unparked: call "), "{out}");
    let l214 = line_of(&server, "214").await;
    let taken = wait_for_call(&server, "unparked at 214", |c| {
        c.line == l214 && c.state == "connected"
    })
    .await;
    assert_eq!(taken.reason, "unpark");
    assert_eq!(taken.connected.number.as_deref(), Some("212"));
    // Park again from the other side, at a chosen place, with the CLI.
    let out = server.cli_ok(&["park", &a.to_string(), "--at", "710"]);
    assert_eq!(out.trim(), "parked at 710");
    wait_until_gone(&server, "212's call", |c| c.id == a).await;
    act(&server, taken.id, "drop", json!({})).await;
    wait_until_gone(&server, "any call", |_| true).await;
}
