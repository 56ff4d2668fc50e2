//! Interop with the third-party CSTA-XML mock switch `pyssimist` (run as a separate process,
//! with the scenario glue in `tests/peer/scenario.py`): framing, the OSV session, monitoring,
//! snapshots (segmented too), forwarding read at synchronisation, devices out of service and
//! back, a monitor the switch ends, and MakeCall. Skipped with a message when pyssimist is not
//! installed; set `TAPIR_PYSSIMIST_PYTHON` to the interpreter of its virtualenv.

mod support;

use std::time::{Duration, Instant};

use tapir_driver_csta::{CstaConfig, CstaProvider, Dialect};
use tapir_model::{CallState, ForwardMode, RequestId};
use tapir_provider::testing::RunningProvider;
use tapir_provider::{
    CallRef, Completion, DeviceKey, Provider, ProviderCommand, ProviderEvent, ProviderRequest,
};
use tokio::sync::mpsc;

fn osv_config(port: u16, devices: &[&str]) -> CstaConfig {
    let mut config = CstaConfig::new("127.0.0.1", devices);
    config.port = port;
    config.dialect = Dialect::Osv;
    config
}

async fn next(events: &mut mpsc::Receiver<ProviderEvent>) -> ProviderEvent {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an event within 10 s")
        .expect("the provider is running")
}

async fn command(requests: &mpsc::Sender<ProviderRequest>, id: u64, command: ProviderCommand) {
    requests
        .send(ProviderRequest {
            id: RequestId(id),
            command,
        })
        .await
        .expect("the provider takes requests");
}

/// MakeCall on `device`: completes with the new call first, then three reports of it.
pub async fn make_call(
    events: &mut mpsc::Receiver<ProviderEvent>,
    requests: &mpsc::Sender<ProviderRequest>,
    device: &str,
) -> CallRef {
    let request = ProviderCommand::MakeCall {
        device: DeviceKey(device.into()),
        to: "1001".into(),
    };
    command(requests, 1, request).await;
    let ProviderEvent::Completed {
        request: RequestId(1),
        outcome: Ok(Completion::Call(call)),
    } = next(events).await
    else {
        panic!("MakeCall must complete first");
    };
    let mut states = Vec::new();
    for _ in 0..3 {
        let ProviderEvent::Call(report) = next(events).await else {
            panic!("a call report")
        };
        assert_eq!(report.call, call);
        states.push(report.state.name());
    }
    assert_eq!(states, ["dialtone", "proceeding", "ringback"]);
    call
}

#[tokio::test]
async fn osv_session_monitoring_and_make_call_against_pyssimist() {
    if let Some(skip) = support::pyssimist_missing() {
        eprintln!("{skip}");
        return;
    }
    let peer = support::scenario_peer(30);
    let provider = Box::new(CstaProvider::new(osv_config(peer.port, &["1000"])).unwrap());
    let report = provider.test_connection().await.unwrap();
    assert!(
        report.summary.contains("PythonCstaServer"),
        "{}",
        report.summary
    );
    // pyssimist serves one client at a time; give it a moment after the test connection.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut running = RunningProvider::start(provider, "pyssimist");
    assert_eq!(next(&mut running.events).await, ProviderEvent::Up);
    assert!(matches!(
        next(&mut running.events).await,
        ProviderEvent::Synchronized { devices, .. } if devices.len() == 1
    ));
    make_call(&mut running.events, &running.requests, "1000").await;
    running.shutdown.cancel();
    running.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn synchronisation_reads_service_state_forwarding_and_segmented_snapshots() {
    if let Some(skip) = support::pyssimist_missing() {
        eprintln!("{skip}");
        return;
    }
    let peer = support::scenario_peer(30);
    let config = osv_config(peer.port, &["1000", "1001", "1003", "1099"]);
    let provider = Box::new(CstaProvider::new(config).unwrap());
    let mut running = RunningProvider::start(provider, "pyssimist");
    assert_eq!(next(&mut running.events).await, ProviderEvent::Up);
    let ProviderEvent::Synchronized {
        devices,
        calls,
        statuses,
        out_of_service,
    } = next(&mut running.events).await
    else {
        panic!("Synchronized follows Up");
    };
    assert_eq!(devices.len(), 4, "a refused device is still a line");
    // 1003: OutOfServiceEvent right after its MonitorStart; 1099: MonitorStart refused.
    assert_eq!(
        out_of_service,
        [DeviceKey("1003".into()), DeviceKey("1099".into())]
    );
    // The forwarding and do-not-disturb the switch answered for 1000.
    let status = statuses
        .iter()
        .find(|s| s.device.0 == "1000")
        .expect("1000's status");
    assert!(status.do_not_disturb);
    assert_eq!(status.forwards.len(), 1, "{status:?}");
    assert_eq!(status.forwards[0].mode, ForwardMode::Unconditional);
    assert_eq!(status.forwards[0].destination, "2000");
    // 1001's snapshot came in two SnapshotDeviceData segments, one call in each.
    let mut at_1001: Vec<(String, CallState)> = calls
        .iter()
        .filter(|c| c.device.0 == "1001")
        .map(|c| (c.call.0.clone(), c.state))
        .collect();
    at_1001.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(at_1001.len(), 2, "{calls:?}");
    assert_eq!(at_1001[0].0, "1001/C1");
    assert!(at_1001[0].1.is_alerting(), "{:?}", at_1001[0]);
    assert_eq!(at_1001[1].0, "1001/C2");
    assert_eq!(at_1001[1].1.name(), "connected");

    // The scenario brings 1003 back when its DND is set.
    let dnd = |device: &str| ProviderCommand::SetDoNotDisturb {
        device: DeviceKey(device.into()),
        enabled: true,
    };
    command(&running.requests, 2, dnd("1003")).await;
    assert!(matches!(
        next(&mut running.events).await,
        ProviderEvent::Completed {
            request: RequestId(2),
            outcome: Ok(Completion::Done)
        }
    ));
    assert!(matches!(
        next(&mut running.events).await,
        ProviderEvent::DeviceService { device, in_service: true, .. } if device.0 == "1003"
    ));

    // A call on 1000, then the switch ends 1000's monitor: out of service, and the call that
    // nothing reports on any more ends. The provider monitors 1000 again (with the link's
    // back-off) and it comes back; 1099, refused every time, stays out of service.
    let call = make_call(&mut running.events, &running.requests, "1000").await;
    command(&running.requests, 3, dnd("1000")).await;
    assert!(matches!(
        next(&mut running.events).await,
        ProviderEvent::Completed {
            request: RequestId(3),
            outcome: Ok(Completion::Done)
        }
    ));
    assert!(matches!(
        next(&mut running.events).await,
        ProviderEvent::DeviceService { device, in_service: false, .. } if device.0 == "1000"
    ));
    let ProviderEvent::Call(report) = next(&mut running.events).await else {
        panic!("the call on 1000 ends");
    };
    assert_eq!(report.call, call);
    assert_eq!(report.state, CallState::Idle);
    let back = next(&mut running.events).await;
    assert!(
        matches!(&back, ProviderEvent::DeviceService { device, in_service: true, .. } if device.0 == "1000"),
        "1000 monitored again: {back:?}"
    );
    // 1000 follows calls again.
    make_call(&mut running.events, &running.requests, "1000").await;
    running.shutdown.cancel();
    running.task.await.unwrap().unwrap();
}

/// A switch that never answers GetForwarding or GetDoNotDisturb (pyssimist's scenario for
/// 1200) costs one request timeout each, not one per device, and synchronisation goes on.
#[tokio::test]
async fn a_switch_that_ignores_get_forwarding_still_synchronises() {
    if let Some(skip) = support::pyssimist_missing() {
        eprintln!("{skip}");
        return;
    }
    let peer = support::scenario_peer(30);
    let mut config = osv_config(peer.port, &["1200", "1201", "1202"]);
    config.request_timeout_ms = 1_000;
    let provider = Box::new(CstaProvider::new(config).unwrap());
    let started = Instant::now();
    let mut running = RunningProvider::start(provider, "silent");
    assert_eq!(next(&mut running.events).await, ProviderEvent::Up);
    let ProviderEvent::Synchronized {
        devices,
        out_of_service,
        statuses,
        ..
    } = next(&mut running.events).await
    else {
        panic!("Synchronized follows Up");
    };
    let took = started.elapsed();
    assert_eq!(devices.len(), 3);
    assert!(out_of_service.is_empty());
    assert!(statuses.is_empty(), "nothing was read: {statuses:?}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_millis(3_500),
        "two timeouts of 1 s, not six: {took:?}"
    );
    running.shutdown.cancel();
    running.task.await.unwrap().unwrap();
}

/// The switch ends 1001's monitor and then accepts it again: its calls end with the monitor,
/// and come back from a fresh snapshot (pyssimist's scenario answers it in two segments).
#[tokio::test]
async fn a_device_monitored_again_is_resynchronised_from_its_snapshot() {
    if let Some(skip) = support::pyssimist_missing() {
        eprintln!("{skip}");
        return;
    }
    let peer = support::scenario_peer(30);
    let config = osv_config(peer.port, &["1001"]);
    let provider = Box::new(CstaProvider::new(config).unwrap());
    let mut running = RunningProvider::start(provider, "pyssimist");
    assert_eq!(next(&mut running.events).await, ProviderEvent::Up);
    let ProviderEvent::Synchronized { calls, .. } = next(&mut running.events).await else {
        panic!("Synchronized follows Up");
    };
    assert_eq!(calls.len(), 2, "{calls:?}");

    let dnd = ProviderCommand::SetDoNotDisturb {
        device: DeviceKey("1001".into()),
        enabled: true,
    };
    command(&running.requests, 2, dnd).await;
    assert!(matches!(
        next(&mut running.events).await,
        ProviderEvent::Completed {
            request: RequestId(2),
            outcome: Ok(Completion::Done)
        }
    ));
    let service = |in_service: bool| {
        move |event: &ProviderEvent| {
            matches!(event, ProviderEvent::DeviceService { device, in_service: s, .. }
                if device.0 == "1001" && *s == in_service)
        }
    };
    assert!(service(false)(&next(&mut running.events).await));
    let ended = call_states(&mut running.events, 2).await;
    assert_eq!(
        ended,
        [("1001/C1".into(), "idle"), ("1001/C2".into(), "idle")]
    );
    assert!(service(true)(&next(&mut running.events).await));
    let back = call_states(&mut running.events, 2).await;
    assert_eq!(
        back,
        [
            ("1001/C1".into(), "offering"),
            ("1001/C2".into(), "connected")
        ]
    );
    running.shutdown.cancel();
    running.task.await.unwrap().unwrap();
}

/// The next `count` events, which must be call reports: (call, state), sorted by call.
async fn call_states(
    events: &mut mpsc::Receiver<ProviderEvent>,
    count: usize,
) -> Vec<(String, &'static str)> {
    let mut states = Vec::new();
    for _ in 0..count {
        let ProviderEvent::Call(report) = next(events).await else {
            panic!("a call report");
        };
        states.push((report.call.0.clone(), report.state.name()));
    }
    states.sort();
    states
}
