//! The cloneable way into the engine: queries, commands and subscriptions over channels.

use std::sync::Arc;

use tapir_model::{CallId, Command, ErrorKind, LineId, TapiError};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::engine::{InstanceChange, StartError};
use crate::view::{CallSnapshot, CommandOutcome, InstanceInfo, LineSnapshot, Sequenced, Snapshot};

/// A request to the owner task; each carries the channel for its one reply.
pub(crate) enum Request {
    SetTrace {
        instance: String,
        enabled: bool,
        reply: oneshot::Sender<Result<(), StartError>>,
    },
    Purge {
        lines: Vec<LineId>,
        reply: oneshot::Sender<Result<Vec<LineId>, TapiError>>,
    },
    Reconfigure {
        changes: Vec<InstanceChange>,
        reply: oneshot::Sender<Result<(), StartError>>,
    },
    WhenSettled {
        reply: oneshot::Sender<()>,
    },
    Execute {
        command: Command,
        reply: oneshot::Sender<Result<CommandOutcome, TapiError>>,
    },
    Snapshot {
        reply: oneshot::Sender<Arc<Snapshot>>,
    },
    Line {
        id: LineId,
        reply: oneshot::Sender<Option<LineSnapshot>>,
    },
    Call {
        id: CallId,
        reply: oneshot::Sender<Option<CallSnapshot>>,
    },
    Instances {
        reply: oneshot::Sender<Vec<InstanceInfo>>,
    },
    Subscribe {
        since: Option<u64>,
        reply: oneshot::Sender<Subscription>,
    },
}

/// How a subscription starts: with everything, or with the events the client missed.
#[derive(Debug)]
pub enum SubscriptionStart {
    /// The full state; `events` continues after `snapshot.seq`.
    Snapshot(Arc<Snapshot>),
    /// The events after the sequence number the client gave; `events` continues after them.
    Replay(Vec<Arc<Sequenced>>),
}

/// A subscription: its start, then every later event in order.
#[derive(Debug)]
pub struct Subscription {
    pub start: SubscriptionStart,
    pub events: broadcast::Receiver<Arc<Sequenced>>,
}

/// Why a reconfiguration was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ReconfigureError {
    #[error(transparent)]
    Refused(StartError),
    #[error("the engine has stopped")]
    Stopped,
}

/// The engine has stopped; the server is shutting down.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the engine has stopped")]
pub struct EngineStopped;

/// A cloneable handle to the running engine.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Request>,
    epoch: u64,
}

impl EngineHandle {
    pub(crate) fn new(tx: mpsc::Sender<Request>, epoch: u64) -> EngineHandle {
        EngineHandle { tx, epoch }
    }

    /// This run's event stream, as snapshots carry it: a client that resumes with a
    /// sequence number of another epoch (the server restarted) must start from a snapshot.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    async fn ask<T>(
        &self,
        build: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, EngineStopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(build(reply))
            .await
            .map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }

    /// Carries out a command; completes exactly once.
    pub async fn execute(&self, command: Command) -> Result<CommandOutcome, TapiError> {
        match self.ask(|reply| Request::Execute { command, reply }).await {
            Ok(result) => result,
            Err(EngineStopped) => Err(TapiError::new(
                ErrorKind::OperationFailed,
                "the server is shutting down; the command was not carried out",
            )),
        }
    }

    /// Everything now. Shared: asking twice without a change in between costs one copy.
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>, EngineStopped> {
        self.ask(|reply| Request::Snapshot { reply }).await
    }

    pub async fn line(&self, id: LineId) -> Result<Option<LineSnapshot>, EngineStopped> {
        self.ask(|reply| Request::Line { id, reply }).await
    }

    pub async fn call(&self, id: CallId) -> Result<Option<CallSnapshot>, EngineStopped> {
        self.ask(|reply| Request::Call { id, reply }).await
    }

    pub async fn instances(&self) -> Result<Vec<InstanceInfo>, EngineStopped> {
        self.ask(|reply| Request::Instances { reply }).await
    }

    /// Forgets defunct lines for good (all of them when `lines` is empty); their ids are
    /// never reused.
    pub async fn purge_lines(&self, lines: Vec<LineId>) -> Result<Vec<LineId>, TapiError> {
        match self.ask(|reply| Request::Purge { lines, reply }).await {
            Ok(result) => result,
            Err(EngineStopped) => Err(TapiError::new(
                ErrorKind::OperationFailed,
                "the server is shutting down",
            )),
        }
    }

    /// Adds, removes and restarts instances; the others keep running untouched.
    pub async fn reconfigure(&self, changes: Vec<InstanceChange>) -> Result<(), ReconfigureError> {
        self.ask(|reply| Request::Reconfigure { changes, reply })
            .await
            .map_err(|_| ReconfigureError::Stopped)?
            .map_err(ReconfigureError::Refused)
    }

    /// Switches an instance's protocol trace on or off.
    pub async fn set_trace(&self, instance: String, enabled: bool) -> Result<(), ReconfigureError> {
        self.ask(|reply| Request::SetTrace {
            instance,
            enabled,
            reply,
        })
        .await
        .map_err(|_| ReconfigureError::Stopped)?
        .map_err(ReconfigureError::Refused)
    }

    /// Waits until every instance has either reported its devices once or failed, so that a
    /// server can start answering with its lines in place.
    pub async fn settled(&self) -> Result<(), EngineStopped> {
        self.ask(|reply| Request::WhenSettled { reply }).await
    }

    /// Subscribes to events after `since`, or from a fresh snapshot when `since` is `None` or
    /// no longer buffered.
    pub async fn subscribe(&self, since: Option<u64>) -> Result<Subscription, EngineStopped> {
        self.ask(|reply| Request::Subscribe { since, reply }).await
    }
}
