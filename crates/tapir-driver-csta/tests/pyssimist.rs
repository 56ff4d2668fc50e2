//! Interop with the third-party CSTA-XML mock switch `pyssimist` (PyPI, run as a separate
//! process through the probe script in `shared/`): framing, the OSV session, monitoring and
//! MakeCall. Skipped with a message when the peer is not installed; set
//! `TAPIR_PYSSIMIST_PYTHON` to the interpreter of its virtualenv.

use std::process::{Command, Stdio};
use std::time::Duration;

use tapir_driver_csta::{CstaConfig, CstaProvider, Dialect};
use tapir_model::RequestId;
use tapir_provider::testing::RunningProvider;
use tapir_provider::{
    Completion, DeviceKey, Provider, ProviderCommand, ProviderEvent, ProviderRequest,
};
use tokio::time::timeout;

const PEER: &str = "../../../shared/reference/csta/pyssimist-probe/peer.py";

fn python() -> String {
    std::env::var("TAPIR_PYSSIMIST_PYTHON").unwrap_or_else(|_| "python3".into())
}

#[tokio::test]
async fn osv_session_monitoring_and_make_call_against_pyssimist() {
    let probe = Command::new(python())
        .args(["-c", "import common.server, csta.CstaUser"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) || !std::path::Path::new(PEER).exists() {
        eprintln!(
            "SKIPPED: pyssimist is not importable by {} (pip install pyssimist==1.0.3) or {PEER} is missing",
            python()
        );
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut peer = Command::new(python())
        .args([PEER, &port.to_string(), "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;

    let mut config = CstaConfig::new("127.0.0.1", &["1000"]);
    config.port = port;
    config.dialect = Dialect::Osv;
    let provider = Box::new(CstaProvider::new(config).unwrap());
    let report = provider.test_connection().await.unwrap();
    assert!(
        report.summary.contains("PythonCstaServer"),
        "{}",
        report.summary
    );

    // pyssimist serves one client at a time; give it a moment after the test connection.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let RunningProvider {
        mut events,
        requests,
        shutdown,
        task,
    } = RunningProvider::start(provider, "pyssimist");
    let mut next = async || {
        timeout(Duration::from_secs(10), events.recv())
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(next().await, ProviderEvent::Up);
    assert!(
        matches!(next().await, ProviderEvent::Synchronized { devices, .. } if devices.len() == 1)
    );
    requests
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
    } = next().await
    else {
        panic!("MakeCall must complete first");
    };
    let mut states = Vec::new();
    for _ in 0..3 {
        let ProviderEvent::Call(report) = next().await else {
            panic!("a call report")
        };
        assert_eq!(report.call, call);
        states.push(report.state.name());
    }
    assert_eq!(states, ["dialtone", "proceeding", "ringback"]);
    shutdown.cancel();
    task.await.unwrap().unwrap();
    let _ = peer.kill();
    let _ = peer.wait();
}
