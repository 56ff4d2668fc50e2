//! Permanent line ids survive a restart of the server.

mod common;

use common::{Server, lines};

#[tokio::test]
async fn line_ids_survive_a_restart_and_a_changed_device_list() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), None);
    let before: Vec<(String, u32)> = lines(&server)
        .await
        .into_iter()
        .map(|l| (l.address, l.id))
        .collect();
    assert_eq!(before.len(), 20);
    server.stop();

    // The same instance now has fewer extensions, starting higher: the ones that remain keep
    // their ids, the new ones get ids never used before.
    let config = dir.path().join("tapir.toml");
    std::fs::write(
        &config,
        "[[instances]]\nname = \"sim\"\n[instances.driver]\ntype = \"sim\"\nextensions = 10\nfirst_extension = 215\n",
    )
    .unwrap();
    let server = Server::start_in(dir.path(), Some(&config));
    let after = lines(&server).await;
    assert_eq!(after.len(), 10);
    for line in &after {
        match before.iter().find(|(address, _)| *address == line.address) {
            Some((_, id)) => assert_eq!(line.id, *id, "extension {} changed id", line.address),
            None => assert!(
                before.iter().all(|(_, id)| *id != line.id),
                "new extension {} reused id {}",
                line.address,
                line.id
            ),
        }
    }
    server.stop();
}
