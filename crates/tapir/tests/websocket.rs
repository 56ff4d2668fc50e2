//! The WebSocket: snapshot, ordered events, commands with results, resume after a
//! disconnect, and bad input that never closes the connection.

mod common;

use common::{Server, Ws, line_of, post_json};
use serde_json::json;
use tapir_wire::{EventDto, ServerMessage};

fn seq_of(message: &ServerMessage) -> Option<u64> {
    match message {
        ServerMessage::Event(e) => Some(e.seq),
        ServerMessage::Snapshot(s) => Some(s.seq),
        _ => None,
    }
}

fn is_idle_of(call: u64) -> impl Fn(&ServerMessage) -> bool {
    move |m| {
        matches!(m, ServerMessage::Event(e)
            if matches!(&e.event, EventDto::CallState { call: c } if c.id == call && c.state == "idle"))
    }
}

#[tokio::test]
async fn the_result_comes_before_the_new_calls_first_event() {
    let server = Server::start();
    let line = line_of(&server, "201").await;
    let mut ws = Ws::connect(&server).await;
    ws.send(json!({"type": "subscribe"})).await;
    let ServerMessage::Snapshot(snapshot) = ws.next().await else {
        panic!("snapshot first")
    };
    assert_eq!(snapshot.lines.len(), 20);
    assert!(snapshot.calls.is_empty());

    ws.send(
        json!({"type": "command", "id": "c1", "command": "make_call", "line": line, "to": "202"}),
    )
    .await;
    let messages = ws
        .until(|m| matches!(m, ServerMessage::Event(e) if matches!(&e.event, EventDto::CallNew { call } if call.line == line)))
        .await;
    let result_at = messages
        .iter()
        .position(|m| matches!(m, ServerMessage::Result { id, ok: true, .. } if id == "c1"))
        .expect("a result for c1 before the call's first event");
    let ServerMessage::Result {
        call: Some(call), ..
    } = &messages[result_at]
    else {
        panic!("the result names the call")
    };
    let ServerMessage::Event(first) = messages.last().unwrap() else {
        unreachable!()
    };
    let EventDto::CallNew { call: new } = &first.event else {
        unreachable!()
    };
    assert_eq!(new.id, *call);
    assert_eq!(first.seq, snapshot.seq + 1, "no event was skipped");
}

#[tokio::test]
async fn a_client_that_reconnects_with_its_last_sequence_number_loses_nothing() {
    let server = Server::start();
    let line = line_of(&server, "203").await;
    let mut ws = Ws::connect(&server).await;
    ws.send(json!({"type": "subscribe"})).await;
    let ServerMessage::Snapshot(snapshot) = ws.next().await else {
        panic!("snapshot first")
    };

    // A first call, seen live.
    let (_, body) = post_json(
        &server,
        &server.api(&format!("/lines/{line}/calls")),
        json!({"to": "204"}),
    )
    .await;
    let first = body["call"].as_u64().unwrap();
    let seen = ws.until(|m| matches!(m, ServerMessage::Event(e) if matches!(&e.event, EventDto::CallNew{call} if call.called.number.as_deref() == Some("204") && call.line != line))).await;
    let last_seen = seen.iter().filter_map(seq_of).max().unwrap();
    drop(ws);

    // While the client is away: the call is dropped and another one made.
    post_json(
        &server,
        &server.api(&format!("/calls/{first}/drop")),
        json!({}),
    )
    .await;
    let (_, body) = post_json(
        &server,
        &server.api(&format!("/lines/{line}/calls")),
        json!({"to": "205"}),
    )
    .await;
    let second = body["call"].as_u64().unwrap();
    post_json(
        &server,
        &server.api(&format!("/calls/{second}/drop")),
        json!({}),
    )
    .await;

    let mut ws = Ws::connect(&server).await;
    ws.send(json!({"type": "subscribe", "since": last_seen}))
        .await;
    let replay = ws.until(is_idle_of(second)).await;
    let seqs: Vec<u64> = replay.iter().filter_map(seq_of).collect();
    let expected: Vec<u64> = (last_seen + 1..=last_seen + seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "the missed events, in order, without a gap");
    assert!(
        replay.iter().all(|m| matches!(m, ServerMessage::Event(_))),
        "a resume within the buffer replays events instead of a snapshot"
    );
    assert!(
        replay.iter().any(is_idle_of(first)),
        "the drop of the first call was replayed"
    );
    assert!(seqs[0] > snapshot.seq);

    // And the stream goes on live after the replay.
    let (_, body) = post_json(
        &server,
        &server.api(&format!("/lines/{line}/calls")),
        json!({"to": "206"}),
    )
    .await;
    let third = body["call"].as_u64().unwrap();
    let live = ws.until(|m| matches!(m, ServerMessage::Event(e) if matches!(&e.event, EventDto::CallNew{call} if call.id == third))).await;
    assert_eq!(
        live.first().and_then(seq_of),
        Some(seqs.last().unwrap() + 1)
    );
}

#[tokio::test]
async fn an_unknown_sequence_number_gets_a_fresh_snapshot() {
    let server = Server::start();
    let mut ws = Ws::connect(&server).await;
    ws.send(json!({"type": "subscribe", "since": 1_000_000}))
        .await;
    assert!(matches!(ws.next().await, ServerMessage::Snapshot(_)));
}

#[tokio::test]
async fn bad_input_gets_an_error_and_the_connection_stays_up() {
    let server = Server::start();
    let line = line_of(&server, "207").await;
    let mut ws = Ws::connect(&server).await;
    let bad = [
        "this is not json",
        r#"{"type":"subscribe","since":"yesterday"}"#,
        r#"{"type":"fly"}"#,
        r#"{"type":"command","command":"drop","call":1}"#,
        r#"{"type":"command","id":"x","command":"make_call","line":1}"#,
    ];
    for text in bad {
        ws.send_text(text).await;
        let reply = ws.next().await;
        assert!(
            matches!(reply, ServerMessage::Error { .. }),
            "{text} -> {reply:?}"
        );
    }
    ws.socket
        .send(tokio_tungstenite::tungstenite::Message::Binary(
            vec![1, 2, 3].into(),
        ))
        .await
        .unwrap();
    assert!(matches!(ws.next().await, ServerMessage::Error { .. }));

    // A well-formed command that the model refuses gets a typed result, not an error.
    ws.send(json!({"type": "command", "id": 9, "command": "answer", "call": 4242}))
        .await;
    match ws.next().await {
        ServerMessage::Result {
            id,
            ok: false,
            error: Some(error),
            ..
        } => {
            assert_eq!(id, "9");
            assert_eq!(error.error, "invalid_call");
        }
        other => panic!("expected a failed result, got {other:?}"),
    }

    // Still alive: a real command works.
    ws.send(
        json!({"type": "command", "id": "ok", "command": "make_call", "line": line, "to": "208"}),
    )
    .await;
    let reply = ws
        .until(|m| matches!(m, ServerMessage::Result { .. }))
        .await;
    assert!(
        matches!(reply.last(), Some(ServerMessage::Result { ok: true, .. })),
        "{reply:?}"
    );
}

use futures_util::SinkExt;

/// A client that falls behind the event stream (here: a backlog of 2 events) is resumed
/// from the buffer: it still sees every event once and in order, and each command's result
/// before the first event of the call the command created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_falls_behind_is_resumed_in_order() {
    let server = Server::with_config(
        "[server]\nsubscriber_backlog = 2\n\
         [[instances]]\nname = \"sim\"\n[instances.driver]\ntype = \"sim\"\nextensions = 20\n",
    );
    let mut ws = Ws::connect(&server).await;
    ws.send(json!({"type": "subscribe"})).await;
    let ServerMessage::Snapshot(snapshot) = ws.next().await else {
        panic!("snapshot first")
    };
    let lines: Vec<u32> = snapshot.lines.iter().map(|l| l.id).collect();
    let mut last = snapshot.seq;
    for (n, pair) in lines.chunks(2).enumerate() {
        let to = snapshot
            .lines
            .iter()
            .find(|l| l.id == pair[1])
            .unwrap()
            .address
            .clone();
        ws.send(json!({"type": "command", "id": n.to_string(), "command": "make_call", "line": pair[0], "to": to}))
            .await;
    }
    let mut results = std::collections::HashMap::new();
    let mut new_calls = Vec::new();
    while results.len() < lines.len() / 2 || new_calls.len() < lines.len() {
        match ws.next().await {
            ServerMessage::Result { id, ok, call, .. } => {
                assert!(ok, "command {id} failed");
                results.insert(call.expect("the new call"), id);
            }
            ServerMessage::Event(e) => {
                assert_eq!(e.seq, last + 1, "events arrive once, in order");
                last = e.seq;
                if let EventDto::CallNew { call } = &e.event {
                    if call.origin == "outbound" {
                        assert!(
                            results.contains_key(&call.id),
                            "call {} appeared before its result",
                            call.id
                        );
                    }
                    new_calls.push(call.id);
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_ping_gets_a_pong_with_the_last_sequence_number_sent() {
    let server = Server::start();
    let mut ws = Ws::connect(&server).await;
    ws.send(json!({"type": "ping", "id": "p1"})).await;
    match ws.next().await {
        ServerMessage::Pong { id, seq } => assert_eq!((id.as_deref(), seq), (Some("p1"), 0)),
        other => panic!("expected a pong, got {other:?}"),
    }
    ws.send(json!({"type": "subscribe"})).await;
    let ServerMessage::Snapshot(snapshot) = ws.next().await else {
        panic!("expected a snapshot");
    };
    ws.send(json!({"type": "ping"})).await;
    match ws.next().await {
        ServerMessage::Pong { id, seq } => assert_eq!((id, seq), (None, snapshot.seq)),
        other => panic!("expected a pong, got {other:?}"),
    }
    ws.send(json!({"type": "ping", "extra": 1})).await;
    assert!(matches!(ws.next().await, ServerMessage::Error { .. }));
}
