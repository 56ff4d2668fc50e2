//! Permanent line ids survive a restart of the server and a change of the PBX's device
//! list; lines that left the PBX stay known as defunct.

mod common;

use common::{Server, lines};

#[tokio::test]
async fn line_ids_survive_a_restart_and_a_changed_device_list() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), None);
    let before: Vec<(String, u32, String)> = lines(&server)
        .await
        .into_iter()
        .map(|l| (l.address, l.id, l.name))
        .collect();
    assert_eq!(before.len(), 20);
    server.stop();

    // The same instance now has ten extensions from 215: 215-220 stay, 221-224 are new and
    // 201-214 are gone from the PBX.
    let config = dir.path().join("tapir.toml");
    std::fs::write(
        &config,
        "[[instances]]\nname = \"sim\"\n[instances.driver]\ntype = \"sim\"\nextensions = 10\nfirst_extension = 215\n",
    )
    .unwrap();
    let server = Server::start_in(dir.path(), Some(&config));
    let after = lines(&server).await;
    let in_service: Vec<_> = after.iter().filter(|l| l.status == "in_service").collect();
    assert_eq!(in_service.len(), 10);
    for line in &in_service {
        match before
            .iter()
            .find(|(address, _, _)| *address == line.address)
        {
            Some((_, id, _)) => assert_eq!(line.id, *id, "extension {} changed id", line.address),
            None => assert!(
                before.iter().all(|(_, id, _)| *id != line.id),
                "new extension {} reused id {}",
                line.address,
                line.id
            ),
        }
    }
    let defunct: Vec<_> = after.iter().filter(|l| l.status == "defunct").collect();
    assert_eq!(defunct.len(), 14, "201-214 are defunct: {after:#?}");
    for line in defunct {
        let (_, id, name) = before.iter().find(|(a, _, _)| *a == line.address).unwrap();
        assert_eq!(
            (line.id, &line.name),
            (*id, name),
            "a defunct line keeps its id and name"
        );
    }
    server.stop();
}

/// Sequence numbers start again when the server restarts: a client that resumes with the
/// number and epoch of the old run gets a fresh snapshot, not the new run's unrelated events.
#[tokio::test]
async fn a_client_of_the_previous_run_resumes_with_a_snapshot() {
    use common::{Ws, line_of, post_json};
    use serde_json::json;
    use tapir_wire::ServerMessage;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), None);
    let mut ws = Ws::connect(&server).await;
    ws.send(json!({"type": "subscribe"})).await;
    let ServerMessage::Snapshot(old) = ws.next().await else {
        panic!("expected a snapshot");
    };
    drop(ws);
    server.stop();

    let server = Server::start_in(dir.path(), None);
    let line = line_of(&server, "201").await;
    // Enough events that the new run passes the old sequence number.
    while server.event_count() <= old.seq + 2 {
        let (status, body) = post_json(
            &server,
            &server.api(&format!("/lines/{line}/calls")),
            json!({"to": "202"}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let call = body["call"].as_u64().unwrap();
        post_json(
            &server,
            &server.api(&format!("/calls/{call}/drop")),
            json!({}),
        )
        .await;
    }
    let mut ws = Ws::connect(&server).await;
    ws.send(json!({"type": "subscribe", "since": old.seq, "epoch": old.epoch}))
        .await;
    match ws.next().await {
        ServerMessage::Snapshot(new) => assert_ne!(new.epoch, old.epoch),
        other => panic!("expected a fresh snapshot for a client of the old run, got {other:?}"),
    }
    // Within one run, the same request resumes.
    let mut ws = Ws::connect(&server).await;
    ws.send(json!({"type": "subscribe"})).await;
    let ServerMessage::Snapshot(now) = ws.next().await else {
        panic!("expected a snapshot");
    };
    let mut again = Ws::connect(&server).await;
    again
        .send(json!({"type": "subscribe", "since": now.seq - 1, "epoch": now.epoch}))
        .await;
    match again.next().await {
        ServerMessage::Event(event) => assert_eq!(event.seq, now.seq),
        other => panic!("expected the replay of event {}, got {other:?}", now.seq),
    }
}
