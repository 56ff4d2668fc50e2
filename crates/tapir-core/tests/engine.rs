//! The engine against a provider the test drives by hand: command deadlines, link loss,
//! resynchronisation and event order.

use std::time::Duration;

use tapir_core::{
    Engine, EngineConfig, EngineHandle, Event, InstanceSpec, Presentation, SubscriptionStart,
};
use tapir_model::{
    CallOrigin, CallReason, CallState, Capabilities, Command, ConnectedMode, ErrorKind, LineId,
    LineStatus, OfferingMode, Party,
};
use tapir_provider::{
    BoxFuture, CallRef, CallReport, Completion, Device, DeviceKey, Provider, ProviderContext,
    ProviderError, ProviderEvent, ProviderRequest, TestReport,
};
use tapir_store::Store;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A provider whose events the test sends and whose requests the test receives.
struct Scripted {
    script: mpsc::UnboundedReceiver<ProviderEvent>,
    requests: mpsc::UnboundedSender<ProviderRequest>,
}

impl Provider for Scripted {
    fn kind(&self) -> &'static str {
        "scripted"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }

    fn run(self: Box<Self>, mut cx: ProviderContext) -> BoxFuture<Result<(), ProviderError>> {
        let Scripted {
            mut script,
            requests,
        } = *self;
        Box::pin(async move {
            loop {
                tokio::select! {
                    _ = cx.shutdown.cancelled() => return Ok(()),
                    Some(event) = script.recv() => {
                        cx.events.send(event).await.map_err(|_| ProviderError::CoreGone)?;
                    }
                    Some(request) = cx.requests.recv() => {
                        let _ = requests.send(request);
                    }
                }
            }
        })
    }

    fn test_connection(&self) -> BoxFuture<Result<TestReport, ProviderError>> {
        Box::pin(async {
            Ok(TestReport {
                summary: "scripted".into(),
                devices: 0,
            })
        })
    }
}

struct Harness {
    engine: EngineHandle,
    script: mpsc::UnboundedSender<ProviderEvent>,
    requests: mpsc::UnboundedReceiver<ProviderRequest>,
    shutdown: CancellationToken,
}

fn device(key: &str) -> Device {
    Device::new(key, key, format!("Ext {key}"))
}

fn report(device: &str, call: &str, state: CallState) -> ProviderEvent {
    ProviderEvent::Call(Box::new(call_report(device, call, state)))
}

fn call_report(device: &str, call: &str, state: CallState) -> CallReport {
    CallReport {
        device: DeviceKey(device.into()),
        call: CallRef(call.into()),
        state,
        origin: CallOrigin::Internal,
        reason: CallReason::Direct,
        caller: Party::number("100"),
        called: Party::number(device),
        connected: Party::default(),
        redirecting: Party::default(),
        redirection: Party::default(),
        related: None,
        conference: None,
    }
}

const OFFERING: CallState = CallState::Offering(OfferingMode::Active);
const CONNECTED: CallState = CallState::Connected(ConnectedMode::Active);

async fn start(timeout: Duration) -> Harness {
    let (script_tx, script) = mpsc::unbounded_channel();
    let (requests_tx, requests) = mpsc::unbounded_channel();
    let config = EngineConfig {
        command_timeout: timeout,
        ..EngineConfig::default()
    };
    let shutdown = CancellationToken::new();
    let provider = Box::new(Scripted {
        script,
        requests: requests_tx,
    });
    let (engine, _task) = Engine::start(
        config,
        Store::open_in_memory().unwrap(),
        vec![InstanceSpec {
            name: "pbx".into(),
            provider,
            presentation: Presentation::default(),
        }],
        shutdown.clone(),
    )
    .unwrap();
    script_tx.send(ProviderEvent::Up).unwrap();
    script_tx
        .send(ProviderEvent::Synchronized {
            devices: vec![device("201"), device("202")],
            calls: vec![],
            statuses: vec![],
            out_of_service: vec![],
        })
        .unwrap();
    let harness = Harness {
        engine,
        script: script_tx,
        requests,
        shutdown,
    };
    harness
        .wait(|s| {
            s.lines.len() == 2
                && s.lines
                    .iter()
                    .all(|l| l.line.status == LineStatus::InService)
        })
        .await;
    harness
}

impl Harness {
    async fn wait(
        &self,
        check: impl Fn(&tapir_core::Snapshot) -> bool,
    ) -> std::sync::Arc<tapir_core::Snapshot> {
        for _ in 0..500 {
            let snapshot = self.engine.snapshot().await.unwrap();
            if check(&snapshot) {
                return snapshot;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "condition never held: {:#?}",
            self.engine.snapshot().await.unwrap()
        );
    }

    async fn line(&self, address: &str) -> LineId {
        let snapshot = self.engine.snapshot().await.unwrap();
        snapshot
            .lines
            .iter()
            .find(|l| l.line.address == address)
            .unwrap()
            .line
            .id
    }
}

#[tokio::test]
async fn a_command_the_pbx_never_answers_completes_once_as_outcome_unknown() {
    let mut h = start(Duration::from_millis(200)).await;
    let line = h.line("201").await;
    let error = h
        .engine
        .execute(Command::MakeCall {
            line,
            to: "202".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::OutcomeUnknown, "{error}");
    assert!(error.message.contains("not repeated"), "{error}");

    // The provider saw the request exactly once; a late answer is ignored, not replayed.
    let request = h.requests.recv().await.unwrap();
    h.script
        .send(ProviderEvent::Completed {
            request: request.id,
            outcome: Ok(Completion::Done),
        })
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(h.requests.try_recv().is_err(), "the command was sent again");
    h.shutdown.cancel();
}

#[tokio::test]
async fn commands_to_a_pbx_whose_link_is_down_are_refused_and_lines_go_out_of_service() {
    let h = start(Duration::from_secs(5)).await;
    let line = h.line("201").await;
    h.script
        .send(ProviderEvent::Down {
            reason: "connection reset".into(),
        })
        .unwrap();
    h.wait(|s| {
        s.lines
            .iter()
            .all(|l| l.line.status == LineStatus::OutOfService)
    })
    .await;
    let error = h
        .engine
        .execute(Command::MakeCall {
            line,
            to: "202".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidLineState);
    assert!(error.message.contains("connection reset"), "{error}");
    h.shutdown.cancel();
}

#[tokio::test]
async fn one_device_goes_out_of_service_and_back_while_the_link_stays_up() {
    let mut h = start(Duration::from_secs(5)).await;
    let line_201 = h.line("201").await;
    let line_202 = h.line("202").await;
    let status = |s: &tapir_core::Snapshot, id: LineId| {
        s.lines
            .iter()
            .find(|l| l.line.id == id)
            .map(|l| l.line.status)
    };
    h.script
        .send(ProviderEvent::DeviceService {
            device: DeviceKey("201".into()),
            in_service: false,
            reason: "subscription refused".into(),
        })
        .unwrap();
    h.wait(|s| status(s, line_201) == Some(LineStatus::OutOfService))
        .await;
    let error = h
        .engine
        .execute(Command::MakeCall {
            line: line_201,
            to: "202".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidLineState);
    assert!(error.message.contains("out of service"), "{error}");
    assert!(h.requests.try_recv().is_err(), "nothing reached the PBX");
    // The other line is untouched and usable.
    let after = h.wait(|s| status(s, line_202).is_some()).await;
    assert_eq!(status(&after, line_202), Some(LineStatus::InService));

    h.script
        .send(ProviderEvent::DeviceService {
            device: DeviceKey("201".into()),
            in_service: true,
            reason: "subscription active".into(),
        })
        .unwrap();
    h.wait(|s| status(s, line_201) == Some(LineStatus::InService))
        .await;
    let engine = h.engine.clone();
    let command = tokio::spawn(async move {
        engine
            .execute(Command::MakeCall {
                line: line_201,
                to: "202".into(),
            })
            .await
    });
    let request = h.requests.recv().await.unwrap();
    h.script
        .send(ProviderEvent::Completed {
            request: request.id,
            outcome: Ok(Completion::Done),
        })
        .unwrap();
    assert!(command.await.unwrap().is_ok());

    // A resynchronisation names the devices that are out of service from the start.
    h.script
        .send(ProviderEvent::Down {
            reason: "lost".into(),
        })
        .unwrap();
    h.script.send(ProviderEvent::Up).unwrap();
    h.script
        .send(ProviderEvent::Synchronized {
            devices: vec![device("201"), device("202")],
            calls: vec![],
            statuses: vec![],
            out_of_service: vec![DeviceKey("202".into())],
        })
        .unwrap();
    let after = h
        .wait(|s| {
            status(s, line_201) == Some(LineStatus::InService)
                && status(s, line_202) == Some(LineStatus::OutOfService)
        })
        .await;
    assert_eq!(after.lines.len(), 2);
    h.shutdown.cancel();
}

#[tokio::test]
async fn a_resync_ends_the_calls_the_pbx_no_longer_has() {
    let h = start(Duration::from_secs(5)).await;
    h.script.send(report("201", "a", OFFERING)).unwrap();
    h.script.send(report("202", "b", CONNECTED)).unwrap();
    h.wait(|s| s.calls.len() == 2).await;
    let mut sub = h.engine.subscribe(None).await.unwrap();

    h.script
        .send(ProviderEvent::Down {
            reason: "lost".into(),
        })
        .unwrap();
    h.script.send(ProviderEvent::Up).unwrap();
    h.script
        .send(ProviderEvent::Synchronized {
            devices: vec![device("201"), device("202")],
            calls: vec![call_report("202", "b", CONNECTED)],
            statuses: vec![],
            out_of_service: vec![],
        })
        .unwrap();
    let after = h
        .wait(|s| {
            s.calls.len() == 1
                && s.lines
                    .iter()
                    .all(|l| l.line.status == LineStatus::InService)
        })
        .await;
    assert_eq!(after.calls[0].call.state, CONNECTED);

    let mut ended = false;
    while let Ok(event) = sub.events.try_recv() {
        if let Event::CallState(c) = &event.event
            && c.call.state == CallState::Idle
        {
            ended = true;
        }
    }
    assert!(ended, "the vanished call was reported idle");
    h.shutdown.cancel();
}

#[tokio::test]
async fn the_result_of_a_call_creating_command_precedes_the_calls_first_event() {
    let mut h = start(Duration::from_secs(5)).await;
    let line = h.line("201").await;
    let Ok(sub) = h.engine.subscribe(None).await else {
        panic!()
    };
    let SubscriptionStart::Snapshot(start_snapshot) = sub.start else {
        panic!("snapshot")
    };
    let mut events = sub.events;
    let engine = h.engine.clone();
    let command = tokio::spawn(async move {
        engine
            .execute(Command::MakeCall {
                line,
                to: "202".into(),
            })
            .await
    });
    let request = h.requests.recv().await.unwrap();
    h.script
        .send(ProviderEvent::Completed {
            request: request.id,
            outcome: Ok(Completion::Call(CallRef("x".into()))),
        })
        .unwrap();
    h.script
        .send(report("201", "x", CallState::Dialing))
        .unwrap();
    let outcome = command.await.unwrap().unwrap();
    let first = events.recv().await.unwrap();
    let Event::CallNew(new) = &first.event else {
        panic!("{first:?}")
    };
    assert_eq!(
        Some(new.call.id),
        outcome.call,
        "the result named the call that then appeared"
    );
    assert_eq!(first.seq, start_snapshot.seq + 1);
    h.shutdown.cancel();
}

#[tokio::test]
async fn impossible_commands_never_reach_the_pbx() {
    let mut h = start(Duration::from_secs(5)).await;
    h.script.send(report("201", "r", OFFERING)).unwrap();
    let snapshot = h.wait(|s| s.calls.len() == 1).await;
    let call = snapshot.calls[0].call.id;
    let cases = [
        (Command::Hold { call }, ErrorKind::InvalidCallState),
        (Command::Unhold { call }, ErrorKind::InvalidCallState),
        (
            Command::CompleteTransfer { call },
            ErrorKind::InvalidCallState,
        ),
        (
            Command::Answer {
                call: tapir_model::CallId(999),
            },
            ErrorKind::InvalidCall,
        ),
        (
            Command::MakeCall {
                line: LineId(999),
                to: "1".into(),
            },
            ErrorKind::InvalidLine,
        ),
        (
            Command::MakeCall {
                line: snapshot.lines[0].line.id,
                to: " ".into(),
            },
            ErrorKind::InvalidAddress,
        ),
    ];
    for (command, kind) in cases {
        let error = h.engine.execute(command.clone()).await.unwrap_err();
        assert_eq!(error.kind, kind, "{command:?}: {error}");
    }
    assert!(
        h.requests.try_recv().is_err(),
        "a refused command reached the provider"
    );
    h.shutdown.cancel();
}
