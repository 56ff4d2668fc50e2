//! A provider running for a test: the other ends of its context.
//!
//! Driver tests start their provider with [`RunningProvider::start`] and then play the
//! core: read its events, send it requests, and shut it down.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Provider, ProviderContext, ProviderError, ProviderEvent, TraceSwitch};

/// A provider task and the channels the core would hold.
pub struct RunningProvider {
    pub events: mpsc::Receiver<ProviderEvent>,
    pub requests: mpsc::Sender<crate::ProviderRequest>,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<(), ProviderError>>,
}

impl RunningProvider {
    /// Spawns `provider` on the current tokio runtime.
    pub fn start(provider: Box<dyn Provider>, instance: &str) -> RunningProvider {
        let (event_tx, events) = mpsc::channel(1024);
        let (requests, request_rx) = mpsc::channel(64);
        let shutdown = CancellationToken::new();
        let cx = ProviderContext {
            instance: instance.to_owned(),
            events: event_tx,
            requests: request_rx,
            shutdown: shutdown.clone(),
            trace: TraceSwitch::default(),
        };
        let task = tokio::spawn(provider.run(cx));
        RunningProvider {
            events,
            requests,
            shutdown,
            task,
        }
    }

    /// The next event, or `None` when none comes within `limit` or the provider stopped.
    pub async fn next_event(&mut self, limit: Duration) -> Option<ProviderEvent> {
        tokio::time::timeout(limit, self.events.recv())
            .await
            .ok()
            .flatten()
    }
}
