//! CSTA over TLS end to end: Debian's socat terminates TLS with a self-signed certificate
//! made here, in front of the pyssimist scenario switch. The provider refuses the switch
//! while nothing vouches for the certificate, and with the certificate as `tls_ca_file` it
//! establishes the OSV session, monitors, synchronises and places a call through the tunnel.

mod support;

use std::time::Duration;

use tapir_driver_csta::{CstaConfig, CstaProvider, Dialect};
use tapir_model::RequestId;
use tapir_provider::testing::RunningProvider;
use tapir_provider::{
    Completion, DeviceKey, Provider, ProviderCommand, ProviderError, ProviderEvent, ProviderRequest,
};
use tokio::sync::mpsc;

fn tls_config(port: u16, ca_file: Option<std::path::PathBuf>) -> CstaConfig {
    // The certificate names `localhost`; the address is the terminator's IPv4 loopback.
    let mut config = CstaConfig::new("127.0.0.1", &["1000"]);
    config.port = port;
    config.dialect = Dialect::Osv;
    config.tls = true;
    config.tls_ca_file = ca_file;
    config.tls_server_name = Some("localhost".into());
    config.request_timeout_ms = 3_000;
    config
}

async fn next(events: &mut mpsc::Receiver<ProviderEvent>) -> ProviderEvent {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an event within 10 s")
        .expect("the provider is running")
}

#[tokio::test]
async fn csta_over_tls_through_socat_to_pyssimist() {
    if let Some(skip) = support::pyssimist_missing() {
        eprintln!("{skip}");
        return;
    }
    support::ensure_socat();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = support::self_signed(dir.path());
    let switch = support::scenario_peer(30);
    let tunnel = support::tls_terminator(&cert, &key, switch.port);

    // Nothing vouches for a self-signed certificate: refused at the handshake.
    let untrusted = CstaProvider::new(tls_config(tunnel.port, None)).unwrap();
    match untrusted.test_connection().await {
        Err(ProviderError::Connect { reason, .. }) => {
            assert!(reason.contains("TLS"), "{reason}")
        }
        other => panic!("an untrusted certificate must be refused: {other:?}"),
    }
    // The right certificate under another name is refused too.
    let mut wrong_name = tls_config(tunnel.port, Some(cert.clone()));
    wrong_name.tls_server_name = Some("switch.example".into());
    assert!(matches!(
        CstaProvider::new(wrong_name)
            .unwrap()
            .test_connection()
            .await,
        Err(ProviderError::Connect { .. })
    ));

    let provider = Box::new(CstaProvider::new(tls_config(tunnel.port, Some(cert))).unwrap());
    let report = provider.test_connection().await.unwrap();
    assert!(
        report.summary.contains("PythonCstaServer"),
        "{}",
        report.summary
    );
    // pyssimist serves one client at a time; give it a moment after the test connection.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut running = RunningProvider::start(provider, "csta-tls");
    assert_eq!(next(&mut running.events).await, ProviderEvent::Up);
    let ProviderEvent::Synchronized { statuses, .. } = next(&mut running.events).await else {
        panic!("Synchronized follows Up");
    };
    assert!(
        statuses
            .iter()
            .any(|s| s.device.0 == "1000" && s.do_not_disturb),
        "GetDoNotDisturb answered through the tunnel: {statuses:?}"
    );
    running
        .requests
        .send(ProviderRequest {
            id: RequestId(1),
            command: ProviderCommand::MakeCall {
                device: DeviceKey("1000".into()),
                to: "1001".into(),
            },
        })
        .await
        .unwrap();
    let ProviderEvent::Completed {
        request: RequestId(1),
        outcome: Ok(Completion::Call(call)),
    } = next(&mut running.events).await
    else {
        panic!("MakeCall must complete first");
    };
    let mut states = Vec::new();
    for _ in 0..3 {
        let ProviderEvent::Call(report) = next(&mut running.events).await else {
            panic!("a call report")
        };
        assert_eq!(report.call, call);
        states.push(report.state.name());
    }
    assert_eq!(states, ["dialtone", "proceeding", "ringback"]);
    running.shutdown.cancel();
    running.task.await.unwrap().unwrap();
}
