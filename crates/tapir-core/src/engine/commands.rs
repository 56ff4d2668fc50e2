//! Commands: routing to a provider, completion exactly once, and the deadline after which
//! the outcome is unknown.

use tapir_model::{Command, ErrorKind, InstanceId, RequestId, TapiError};
use tapir_provider::{Completion, ProviderRequest};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{Owner, Pending};
use crate::routing::route;
use crate::view::CommandOutcome;

impl Owner {
    pub(super) fn execute(
        &mut self,
        command: Command,
        reply: oneshot::Sender<Result<CommandOutcome, TapiError>>,
    ) {
        let name = command.name();
        let (instance, provider_command) = match route(&self.tables, &self.instances, &command) {
            Ok(routed) => routed,
            Err(error) => {
                count(name, error.kind.as_str());
                let _ = reply.send(Err(error));
                return;
            }
        };
        self.next_request += 1;
        let request = RequestId(self.next_request);
        let Some(target) = self.instances.0.get(&instance) else {
            let _ = reply.send(Err(TapiError::new(
                ErrorKind::InvalidLineState,
                "no such instance",
            )));
            return;
        };
        let sent = target.requests.try_send(ProviderRequest {
            id: request,
            command: provider_command,
        });
        if let Err(error) = sent {
            let (kind, why) = match error {
                mpsc::error::TrySendError::Full(_) => {
                    (ErrorKind::ResourceUnavailable, "is overloaded; try again")
                }
                mpsc::error::TrySendError::Closed(_) => {
                    (ErrorKind::InvalidLineState, "is not running")
                }
            };
            count(name, kind.as_str());
            let message = format!("the provider of instance {} {why}", target.name);
            let _ = reply.send(Err(TapiError::new(kind, message)));
            return;
        }
        let deadline = Instant::now() + self.config.command_timeout;
        self.deadlines.insert((deadline, request), ());
        self.pending.insert(
            request,
            Pending {
                reply,
                instance,
                command: name,
                deadline,
            },
        );
    }

    pub(super) fn complete(
        &mut self,
        instance: InstanceId,
        request: RequestId,
        outcome: Result<Completion, TapiError>,
    ) {
        let Some(pending) = self.pending.remove(&request) else {
            tracing::warn!(%request, "a command completed after it was reported as outcome unknown");
            return;
        };
        self.deadlines.remove(&(pending.deadline, request));
        let result = outcome.map(|completion| match completion {
            Completion::Done => CommandOutcome {
                request,
                call: None,
                parked_at: None,
            },
            Completion::Call(call_ref) => CommandOutcome {
                request,
                call: Some(self.tables.call_id_for(instance, &call_ref)),
                parked_at: None,
            },
            Completion::Parked { at } => CommandOutcome {
                request,
                call: None,
                parked_at: Some(at),
            },
        });
        count(
            pending.command,
            result.as_ref().map_or_else(|e| e.kind.as_str(), |_| "ok"),
        );
        let _ = pending.reply.send(result);
    }

    pub(super) fn expire_requests(&mut self) {
        let now = Instant::now();
        while let Some(&(at, request)) = self.deadlines.keys().next() {
            if at > now {
                break;
            }
            self.deadlines.remove(&(at, request));
            let Some(pending) = self.pending.remove(&request) else {
                continue;
            };
            tracing::warn!(%request, command = pending.command,
                instance = %self.instance_name(pending.instance),
                "the PBX did not answer in time; outcome unknown");
            count(pending.command, "outcome_unknown");
            let _ = pending.reply.send(Err(TapiError::new(
                ErrorKind::OutcomeUnknown,
                format!(
                    "the PBX did not answer within {} ms; the command may or may not have taken \
                     effect and is not repeated",
                    self.config.command_timeout.as_millis()
                ),
            )));
        }
    }
}

fn count(command: &'static str, result: &'static str) {
    metrics::counter!("tapir_commands_total", "command" => command, "result" => result)
        .increment(1);
}
