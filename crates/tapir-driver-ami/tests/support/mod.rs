//! Test support: transcripts, the replay peer, and a running provider to talk to.

#![allow(dead_code)]

pub mod peer;
pub mod transcript;

use std::time::Duration;

use tapir_driver_ami::{AmiConfig, AmiProvider};
use tapir_model::RequestId;
use tapir_provider::testing::RunningProvider;
use tapir_provider::{CallReport, ProviderCommand, ProviderError, ProviderEvent, ProviderRequest};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A configuration for a peer on `port`, with quick reconnects and no idle pings.
pub fn config(port: u16) -> AmiConfig {
    let mut config = AmiConfig::new("127.0.0.1", "ctiuser", "ctipass");
    config.port = port;
    config.context = "internal".into();
    config.reconnect_min_ms = 20;
    config.reconnect_max_ms = 100;
    config.connect_timeout_ms = 2_000;
    config.ping_interval_ms = 60_000;
    config
}

/// A provider running against a peer.
pub struct Running {
    pub events: mpsc::Receiver<ProviderEvent>,
    pub requests: mpsc::Sender<ProviderRequest>,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), ProviderError>>,
    next_request: u64,
}

impl Running {
    pub fn start(config: AmiConfig) -> Running {
        let provider = Box::new(AmiProvider::new(config).expect("valid config"));
        let RunningProvider {
            events,
            requests,
            shutdown,
            task,
        } = RunningProvider::start(provider, "ami-test");
        Running {
            events,
            requests,
            shutdown,
            task,
            next_request: 0,
        }
    }

    /// The next event, failing the test after 5 s.
    pub async fn next(&mut self) -> ProviderEvent {
        tokio::time::timeout(Duration::from_secs(5), self.events.recv())
            .await
            .expect("an event in time")
            .expect("the provider is running")
    }

    /// The next event within `wait`, if any.
    pub async fn next_within(&mut self, wait: Duration) -> Option<ProviderEvent> {
        tokio::time::timeout(wait, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// Reads until an event matches, returning it and what came before.
    pub async fn until(
        &mut self,
        mut matches: impl FnMut(&ProviderEvent) -> bool,
    ) -> (ProviderEvent, Vec<ProviderEvent>) {
        let mut before = Vec::new();
        loop {
            let event = self.next().await;
            if matches(&event) {
                return (event, before);
            }
            before.push(event);
        }
    }

    /// Sends a command, returning its request id.
    pub async fn command(&mut self, command: ProviderCommand) -> RequestId {
        self.next_request += 1;
        let id = RequestId(self.next_request);
        self.requests
            .send(ProviderRequest { id, command })
            .await
            .expect("the provider takes requests");
        id
    }

    pub async fn stop(self) -> Result<(), ProviderError> {
        self.shutdown.cancel();
        self.task.await.expect("the provider task ends")
    }
}

/// The call reports among `events`.
pub fn reports(events: &[ProviderEvent]) -> Vec<CallReport> {
    events
        .iter()
        .filter_map(|e| match e {
            ProviderEvent::Call(report) => Some((**report).clone()),
            _ => None,
        })
        .collect()
}

/// `device: state` of each report for `device`, with the disconnect mode if any.
pub fn states_of(reports: &[CallReport], device: &str) -> Vec<String> {
    reports
        .iter()
        .filter(|r| r.device.0 == device)
        .map(|r| match r.state.mode() {
            Some((mode, _)) if r.state.name() == "disconnected" => {
                format!("disconnected/{mode}")
            }
            _ => r.state.name().to_string(),
        })
        .collect()
}
