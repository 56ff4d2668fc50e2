//! Starting, stopping and reconfiguring instances; line ids, names and lifecycles.

use std::collections::BTreeSet;

use tapir_model::{ErrorKind, InstanceId, LineId, LineStatus, TapiError};
use tapir_provider::{Device, ProviderContext, ProviderEvent, TraceSwitch};
use tapir_store::{DeviceIdentity, StoreError};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::{Inbound, Instance, InstanceChange, InstanceSpec, Owner, StartError};
use crate::now_ms;
use crate::template::NameContext;
use crate::view::{Event, InstanceStatus};

impl Owner {
    /// Spawns an instance's provider and the task that forwards its events.
    pub(super) fn start_instance(&mut self, spec: InstanceSpec) -> InstanceId {
        self.snapshot_cache = None;
        self.next_instance += 1;
        let id = InstanceId(self.next_instance);
        let (events_tx, mut events_rx) = mpsc::channel(4096);
        let (requests_tx, requests_rx) = mpsc::channel(1024);
        let stop = self.providers_shutdown.child_token();
        let trace = TraceSwitch::default();
        let span = tracing::info_span!("instance", instance = spec.name.as_str());
        let driver = spec.provider.kind();
        let capabilities = spec.provider.capabilities();
        let identity = spec.provider.identity();
        let cx = ProviderContext {
            instance: spec.name.clone(),
            events: events_tx,
            requests: requests_rx,
            shutdown: stop.clone(),
            trace: trace.clone(),
        };
        let run = spec.provider.run(cx);
        let exits = self.inbound.clone();
        self.tasks.spawn(
            async move {
                let result = run.await;
                let _ = exits.send(Inbound::Exited(id, result)).await;
            }
            .instrument(span),
        );
        let inbound = self.inbound.clone();
        self.tasks.spawn(async move {
            while let Some(event) = events_rx.recv().await {
                if inbound.send(Inbound::Event(id, event)).await.is_err() {
                    break;
                }
            }
        });
        self.instances.0.insert(
            id,
            Instance {
                name: spec.name,
                driver,
                capabilities,
                identity,
                presentation: spec.presentation,
                status: InstanceStatus::Starting,
                status_since: now_ms(),
                requests: requests_tx,
                stop,
                trace,
            },
        );
        id
    }

    /// Lists the lines the store remembers for an instance, out of service until its PBX
    /// reports them.
    pub(super) async fn load_known_lines(&mut self, id: InstanceId) {
        let name = self.instance_name(id);
        let store = self.store.clone();
        let lookup = name.clone();
        let known = tokio::task::spawn_blocking(move || match store.lock() {
            Ok(store) => store.known_lines(&lookup),
            Err(poisoned) => poisoned.into_inner().known_lines(&lookup),
        })
        .await;
        let known = match known {
            Ok(Ok(known)) => known,
            Ok(Err(error)) => {
                tracing::error!(instance = %name, %error, "cannot read known lines");
                return;
            }
            Err(error) => {
                tracing::error!(instance = %name, %error, "reading known lines failed");
                return;
            }
        };
        let lines = known
            .into_iter()
            .map(|k| (k.id, Device::new(k.device_key, k.address, k.name)))
            .collect();
        let mut events = Vec::new();
        self.tables
            .insert_known_lines(id, &name, lines, &mut events);
        self.publish(events);
    }

    /// Stops an instance's provider and forgets its lines; commands in flight complete as
    /// outcome unknown.
    fn stop_instance(&mut self, id: InstanceId) {
        let Some(instance) = self.instances.0.remove(&id) else {
            return;
        };
        self.snapshot_cache = None;
        instance.stop.cancel();
        self.settled.remove(&id);
        let orphans: Vec<_> = self
            .pending
            .iter()
            .filter(|(_, p)| p.instance == id)
            .map(|(r, _)| *r)
            .collect();
        for request in orphans {
            if let Some(pending) = self.pending.remove(&request) {
                self.deadlines.remove(&(pending.deadline, request));
                let _ = pending.reply.send(Err(TapiError::new(
                    ErrorKind::OutcomeUnknown,
                    format!(
                        "instance {} was stopped before its PBX answered",
                        instance.name
                    ),
                )));
            }
        }
        let mut events = Vec::new();
        let now = now_ms();
        for line in self.tables.lines_of(id) {
            self.tables.forget_line(line, now, &mut events);
        }
        self.publish(events);
        tracing::info!(instance = %instance.name, "instance stopped");
    }

    /// Applies a reload: removed instances stop, added ones start, replaced ones restart.
    /// Instances not named keep running untouched.
    pub(super) async fn reconfigure(
        &mut self,
        changes: Vec<InstanceChange>,
    ) -> Result<(), StartError> {
        for change in &changes {
            let (name, must_exist) = match change {
                InstanceChange::Add(spec) => (&spec.name, false),
                InstanceChange::Remove(name) => (name, true),
                InstanceChange::Replace(spec) => (&spec.name, true),
            };
            match (self.instances.by_name(name).is_some(), must_exist) {
                (true, false) => return Err(StartError::DuplicateInstance(name.clone())),
                (false, true) => return Err(StartError::UnknownInstance(name.clone())),
                _ => {}
            }
        }
        for change in changes {
            match change {
                InstanceChange::Remove(name) => {
                    if let Some(id) = self.instances.by_name(&name) {
                        self.stop_instance(id);
                    }
                }
                InstanceChange::Replace(spec) => {
                    if let Some(id) = self.instances.by_name(&spec.name) {
                        self.stop_instance(id);
                    }
                    let id = self.start_instance(spec);
                    self.load_known_lines(id).await;
                }
                InstanceChange::Add(spec) => {
                    let id = self.start_instance(spec);
                    self.load_known_lines(id).await;
                }
            }
        }
        Ok(())
    }

    pub(super) fn set_status(&mut self, id: InstanceId, status: InstanceStatus) {
        let mut events = Vec::new();
        if let Some(instance) = self.instances.0.get_mut(&id) {
            if instance.status == status {
                return;
            }
            instance.status = status.clone();
            instance.status_since = now_ms();
        }
        if status != InstanceStatus::Up {
            self.tables
                .set_instance_lines_status(id, LineStatus::OutOfService, &mut events);
        }
        if let Some(info) = self.instance_info(id) {
            events.push(Event::InstanceChanged(info));
        }
        self.publish(events);
    }

    pub(super) async fn on_provider_event(&mut self, id: InstanceId, event: ProviderEvent) {
        let mut events = Vec::new();
        let now = now_ms();
        match event {
            ProviderEvent::Up => self.set_status(id, InstanceStatus::Up),
            ProviderEvent::Down { reason } => {
                self.set_status(id, InstanceStatus::Down { reason });
                // It tried and failed: start-up need not wait for it any longer.
                self.mark_settled(id);
            }
            ProviderEvent::Synchronized {
                devices,
                calls,
                statuses,
                out_of_service,
            } => {
                let lines = match self.resolve_lines(id, devices).await {
                    Ok(lines) => lines,
                    Err(error) => {
                        tracing::error!(instance = %self.instance_name(id), %error,
                            "cannot assign line ids");
                        let reason = error.to_string();
                        self.set_status(id, InstanceStatus::Failed { reason });
                        self.mark_settled(id);
                        return;
                    }
                };
                let keep: BTreeSet<LineId> = lines.iter().map(|(line, _)| *line).collect();
                let name = self.instance_name(id);
                self.tables.retain_lines(id, &keep, now, &mut events);
                self.tables.upsert_lines(id, &name, lines, &mut events);
                for device in &out_of_service {
                    self.tables
                        .set_device_service(id, device, false, &mut events);
                }
                for status in statuses {
                    self.tables.apply_device_status(id, status, &mut events);
                }
                let present = calls.iter().map(|c| c.call.clone()).collect();
                self.tables.end_calls_except(id, &present, now, &mut events);
                let capabilities = self.capabilities(id);
                for mut report in calls {
                    if let Some(instance) = self.instances.0.get(&id) {
                        instance.presentation.present_report(&mut report);
                    }
                    self.tables
                        .apply_report(id, capabilities, report, now, &mut events);
                }
                metrics::gauge!("tapir_lines").set(self.tables.lines().len() as f64);
                if let Some(info) = self.instance_info(id) {
                    events.push(Event::InstanceChanged(info));
                }
                self.publish(std::mem::take(&mut events));
                self.mark_settled(id);
            }
            ProviderEvent::DeviceAdded(device) => {
                match self.resolve_lines(id, vec![device]).await {
                    Ok(lines) => {
                        let name = self.instance_name(id);
                        self.tables.upsert_lines(id, &name, lines, &mut events);
                    }
                    Err(error) => tracing::error!(%error, "cannot assign a line id"),
                }
            }
            ProviderEvent::DeviceRemoved(key) => {
                if let Some(line) = self.tables.line_by_device(id, &key) {
                    self.tables.make_defunct(line, now, &mut events);
                }
            }
            ProviderEvent::DeviceStatus(status) => {
                self.tables.apply_device_status(id, status, &mut events)
            }
            ProviderEvent::DeviceService {
                device,
                in_service,
                reason,
            } => {
                tracing::info!(instance = %self.instance_name(id), device = %device.0,
                    in_service, %reason, "device service changed");
                let up = self
                    .instances
                    .0
                    .get(&id)
                    .is_some_and(|i| i.status == InstanceStatus::Up);
                // While the link is down every line is out of service anyway; the next
                // Synchronized says what comes back.
                if up || !in_service {
                    self.tables
                        .set_device_service(id, &device, in_service, &mut events);
                }
            }
            ProviderEvent::Call(mut report) => {
                let capabilities = self.capabilities(id);
                if let Some(instance) = self.instances.0.get(&id) {
                    instance.presentation.present_report(&mut report);
                }
                self.tables
                    .apply_report(id, capabilities, *report, now, &mut events);
            }
            ProviderEvent::Completed { request, outcome } => self.complete(id, request, outcome),
        }
        self.publish(events);
    }

    /// Permanent ids and presented names for devices: ids from the store (off the async
    /// workers), names from the instance's template.
    async fn resolve_lines(
        &self,
        id: InstanceId,
        devices: Vec<Device>,
    ) -> Result<Vec<(LineId, Device)>, StoreError> {
        let Some(instance) = self.instances.0.get(&id) else {
            return Ok(Vec::new());
        };
        let named: Vec<Device> = devices
            .into_iter()
            .map(|device| {
                let cx = NameContext {
                    device: &device,
                    pbx: &instance.identity,
                    instance: &instance.name,
                };
                let name = instance.presentation.line_name.render(&cx);
                Device { name, ..device }
            })
            .collect();
        let store = self.store.clone();
        let instance = instance.name.clone();
        let resolved = tokio::task::spawn_blocking(move || {
            let identities: Vec<DeviceIdentity<'_>> = named
                .iter()
                .map(|d| DeviceIdentity {
                    key: &d.key.0,
                    address: &d.address,
                    name: &d.name,
                })
                .collect();
            let ids = match store.lock() {
                Ok(mut store) => store.line_ids(&instance, &identities),
                Err(poisoned) => poisoned.into_inner().line_ids(&instance, &identities),
            }?;
            Ok(ids.into_iter().zip(named).collect())
        })
        .await;
        match resolved {
            Ok(result) => result,
            Err(join_error) => {
                tracing::error!(%join_error, "line id lookup panicked");
                Ok(Vec::new())
            }
        }
    }

    /// Forgets defunct lines for good: from the tables and the store. Their ids are never
    /// reused. An empty list purges every defunct line.
    pub(super) async fn purge(&mut self, lines: Vec<LineId>) -> Result<Vec<LineId>, TapiError> {
        let all = self.tables.lines();
        let targets: Vec<LineId> = if lines.is_empty() {
            all.iter()
                .filter(|l| l.line.status == LineStatus::Defunct)
                .map(|l| l.line.id)
                .collect()
        } else {
            for id in &lines {
                match all.iter().find(|l| l.line.id == *id) {
                    None => {
                        return Err(TapiError::new(
                            ErrorKind::InvalidLine,
                            format!("no line {id}"),
                        ));
                    }
                    Some(l) if l.line.status != LineStatus::Defunct => {
                        return Err(TapiError::new(
                            ErrorKind::InvalidLineState,
                            format!(
                                "line {id} ({}) is {}; only defunct lines can be purged",
                                l.line.address,
                                l.line.status.as_str()
                            ),
                        ));
                    }
                    Some(_) => {}
                }
            }
            lines
        };
        let store = self.store.clone();
        let ids = targets.clone();
        let purged = tokio::task::spawn_blocking(move || match store.lock() {
            Ok(mut store) => store.purge(&ids),
            Err(poisoned) => poisoned.into_inner().purge(&ids),
        })
        .await;
        match purged {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                return Err(TapiError::new(
                    ErrorKind::OperationFailed,
                    error.to_string(),
                ));
            }
            Err(error) => {
                return Err(TapiError::new(
                    ErrorKind::OperationFailed,
                    error.to_string(),
                ));
            }
        }
        let mut events = Vec::new();
        let now = now_ms();
        for line in &targets {
            self.tables.forget_line(*line, now, &mut events);
        }
        self.publish(events);
        Ok(targets)
    }
}
