//! [`SimProvider`]: runs the switch as a tapir provider.
//!
//! One owner loop holds the switch and waits on three things: the next request, the earliest
//! timer and shutdown. Nothing is spawned; timers are entries in the switch's ordered timer
//! map, and the loop sleeps until the earliest.
//!
//! On start it sends `Up` and then `Synchronized` with every extension, no calls (the switch
//! starts empty) and one status per extension, defaults included, so the core never has to
//! guess a status it was not told.

use std::future::pending;
use std::time::Duration;

use tapir_model::Capabilities;
use tapir_provider::{
    BoxFuture, PROTOCOL_TRACE, Provider, ProviderContext, ProviderError, ProviderEvent, TestReport,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::config::SimConfig;
use crate::switch::Switch;

/// The simulated PBX as a provider.
#[derive(Debug, Clone)]
pub struct SimProvider {
    config: SimConfig,
}

impl SimProvider {
    /// A provider for `config`, which is checked first.
    pub fn new(config: SimConfig) -> Result<SimProvider, ProviderError> {
        config.validate()?;
        Ok(SimProvider { config })
    }
}

impl Provider for SimProvider {
    fn kind(&self) -> &'static str {
        "sim"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }

    fn run(self: Box<Self>, cx: ProviderContext) -> BoxFuture<Result<(), ProviderError>> {
        Box::pin(run(self.config, cx))
    }

    fn test_connection(&self) -> BoxFuture<Result<TestReport, ProviderError>> {
        let report = TestReport {
            summary: format!(
                "simulated PBX, {} extensions ({})",
                self.config.extensions,
                self.config.range_text()
            ),
            devices: self.config.extensions as usize,
        };
        Box::pin(async move { Ok(report) })
    }
}

/// The owner loop: announces the switch, then serves requests and timers until shutdown.
async fn run(config: SimConfig, mut cx: ProviderContext) -> Result<(), ProviderError> {
    let mut switch = Switch::new(config);
    let start = Instant::now();
    send(&cx.events, ProviderEvent::Up).await?;
    let synchronized = ProviderEvent::Synchronized {
        devices: switch.devices(),
        calls: Vec::new(),
        statuses: switch.statuses(),
        out_of_service: Vec::new(),
    };
    send(&cx.events, synchronized).await?;
    tracing::info!(instance = %cx.instance, "simulated PBX up");
    // Once the core drops its request sender, timers still run until shutdown.
    let mut requests_open = true;
    loop {
        let deadline = switch
            .next_deadline()
            .map(|ms| start + Duration::from_millis(ms));
        let events = tokio::select! {
            biased;
            () = cx.shutdown.cancelled() => return Ok(()),
            request = cx.requests.recv(), if requests_open => match request {
                Some(request) => {
                    if cx.trace.is_on() {
                        tracing::trace!(target: PROTOCOL_TRACE, direction = "in", "{request:?}");
                    }
                    switch.handle(elapsed_ms(start), request)
                }
                None => {
                    requests_open = false;
                    continue;
                }
            },
            () = sleep_until_some(deadline) => switch.fire_due(elapsed_ms(start)),
        };
        for event in events {
            if cx.trace.is_on() {
                tracing::trace!(target: PROTOCOL_TRACE, direction = "out", "{event:?}");
            }
            send(&cx.events, event).await?;
        }
    }
}

async fn send(
    events: &mpsc::Sender<ProviderEvent>,
    event: ProviderEvent,
) -> Result<(), ProviderError> {
    events
        .send(event)
        .await
        .map_err(|_| ProviderError::CoreGone)
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => pending().await,
    }
}

/// Milliseconds since `start`, the switch's clock.
fn elapsed_ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use tapir_model::{CallState, RequestId};
    use tapir_provider::{CallRef, Completion, DeviceKey, ProviderCommand, ProviderRequest};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use tapir_provider::testing::RunningProvider;

    struct Running {
        events: mpsc::Receiver<ProviderEvent>,
        requests: mpsc::Sender<ProviderRequest>,
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<Result<(), ProviderError>>,
    }

    fn start(config: SimConfig) -> Running {
        let provider = Box::new(SimProvider::new(config).expect("valid config"));
        let RunningProvider {
            events,
            requests,
            shutdown,
            task,
        } = RunningProvider::start(provider, "sim-test");
        Running {
            events,
            requests,
            shutdown,
            task,
        }
    }

    async fn next(running: &mut Running) -> ProviderEvent {
        tokio::time::timeout(Duration::from_secs(5), running.events.recv())
            .await
            .expect("an event in time")
            .expect("the provider is running")
    }

    #[tokio::test]
    async fn announces_the_switch_serves_a_call_and_stops_on_shutdown() {
        let config = SimConfig {
            extensions: 3,
            auto_answer: vec!["202".into()],
            auto_answer_delay_ms: 20,
            ..SimConfig::default()
        };
        let mut running = start(config);
        assert_eq!(next(&mut running).await, ProviderEvent::Up);
        let ProviderEvent::Synchronized {
            devices,
            calls,
            statuses,
            out_of_service,
        } = next(&mut running).await
        else {
            panic!("Synchronized must follow Up");
        };
        let keys: Vec<_> = devices.iter().map(|d| d.key.0.as_str()).collect();
        assert_eq!(keys, ["201", "202", "203"]);
        assert_eq!(devices[0].name, "Extension 201");
        assert!(calls.is_empty());
        assert!(out_of_service.is_empty());
        assert_eq!(statuses.len(), 3);

        let request = ProviderRequest {
            id: RequestId(1),
            command: ProviderCommand::MakeCall {
                device: DeviceKey("201".into()),
                to: "202".into(),
            },
        };
        running
            .requests
            .send(request)
            .await
            .expect("provider listens");
        let completed = next(&mut running).await;
        assert_eq!(
            completed,
            ProviderEvent::Completed {
                request: RequestId(1),
                outcome: Ok(Completion::Call(CallRef("c1".into()))),
            }
        );
        // Dialing, proceeding, 202 offering, ringback, then 202's auto answer after 20 ms.
        let mut states = Vec::new();
        while states.len() < 6 {
            if let ProviderEvent::Call(report) = next(&mut running).await {
                states.push((report.call.0, report.state));
            }
        }
        let connected = CallState::Connected(tapir_model::ConnectedMode::Active);
        assert_eq!(states[3], ("c1".into(), CallState::Ringback));
        assert_eq!(states[4], ("c2".into(), connected));
        assert_eq!(states[5], ("c1".into(), connected));

        running.shutdown.cancel();
        let result = running.task.await.expect("the provider task ends");
        assert_eq!(result, Ok(()));
    }

    #[tokio::test]
    async fn a_vanished_core_stops_the_provider() {
        let mut running = start(SimConfig::default());
        running.events.close();
        let result = running.task.await.expect("the provider task ends");
        assert_eq!(result, Err(ProviderError::CoreGone));
        drop(running.requests);
    }

    #[tokio::test]
    async fn the_connection_test_describes_the_switch() {
        let provider = SimProvider::new(SimConfig::default()).expect("valid config");
        assert_eq!(provider.kind(), "sim");
        assert_eq!(provider.capabilities(), Capabilities::all());
        let report = provider.test_connection().await.expect("always connects");
        assert_eq!(report.summary, "simulated PBX, 20 extensions (201-220)");
        assert_eq!(report.devices, 20);
        let bad = SimConfig {
            extensions: 0,
            ..SimConfig::default()
        };
        assert!(matches!(
            SimProvider::new(bad),
            Err(ProviderError::Config(_))
        ));
    }
}
