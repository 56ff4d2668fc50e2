//! One provider instance (one permanent provider id): what each TSPI function does, without
//! the ABI. The Windows exports translate handles and pointers and call in here; the native
//! tests call in here directly against a real tapir server.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tapir_wire::{CommandDto, ForwardDto};
use windows_sys::Win32::Devices::Tapi::{
    LINEERR_INCOMPATIBLEAPIVERSION, LINEERR_INVALADDRESS, LINEERR_INVALADDRESSID,
    LINEERR_INVALCALLHANDLE, LINEERR_INVALCALLSTATE, LINEERR_INVALPARAM, LINEERR_INVALTRANSFERMODE,
    LINEERR_NODEVICE, LINEERR_OPERATIONUNAVAIL, LINEFORWARDMODE_BUSY, LINEFORWARDMODE_NOANSW,
    LINEFORWARDMODE_UNCOND, LINETRANSFERMODE_CONFERENCE, LINETRANSFERMODE_TRANSFER,
};

use crate::config::TspConfig;
use crate::devices::{
    CallHandle, DeviceId, Devices, LineErr, LineId, Notice, OpenLine, Outgoing, Placeholder,
    line_err,
};
use crate::engine::{Engine, StartError, Tapisrv};
use crate::structs::{self, CallCounts, HIGHEST_VERSION, LOWEST_VERSION, PlaceBuffer};

/// `TSPI_lineNegotiateTSPIVersion`: the highest version both sides speak.
pub fn negotiate(low: u32, high: u32) -> Result<u32, LineErr> {
    if low > HIGHEST_VERSION || high < LOWEST_VERSION {
        return Err(line_err(LINEERR_INCOMPATIBLEAPIVERSION));
    }
    Ok(high.min(HIGHEST_VERSION))
}

/// Where a new call's handle goes (TAPISRV's out-parameter): called before anything about the
/// call, its completion included, can reach TAPISRV from the connection thread.
pub type Publish<'a> = &'a dyn Fn(CallHandle);

/// One forwarding instruction of `lineForward`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardEntry {
    pub mode: u32,
    pub destination: String,
}

/// A provider instance with its connection.
pub struct Provider {
    devices: Arc<Mutex<Devices>>,
    engine: Mutex<Option<Engine>>,
    /// How long `providerEnumDevices` waits for the server's lines.
    startup_wait: Duration,
}

impl Provider {
    /// Starts the connection to the configured server.
    pub fn start(config: TspConfig, tapisrv: Arc<dyn Tapisrv>) -> Result<Provider, StartError> {
        let devices = Arc::new(Mutex::new(Devices::new()));
        let startup_wait = Duration::from_millis(u64::from(config.startup_wait_ms));
        let engine = Engine::start(config, devices.clone(), tapisrv)?;
        Ok(Provider {
            devices,
            engine: Mutex::new(Some(engine)),
            startup_wait,
        })
    }

    fn devices(&self) -> MutexGuard<'_, Devices> {
        self.devices
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn with_engine(&self, work: impl FnOnce(&Engine)) {
        let engine = self
            .engine
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(engine) = engine.as_ref() {
            work(engine);
        }
    }

    fn deliver(&self, notices: Vec<Notice>) {
        self.with_engine(|engine| engine.deliver(notices));
    }

    /// `providerEnumDevices`: waits (at most the configured start-up wait) for the server's
    /// lines, then counts them.
    pub fn enumerate(&self) -> u32 {
        self.with_engine(|engine| {
            engine.wait_for_snapshot(self.startup_wait);
        });
        self.devices().enumerate()
    }

    /// `providerInit`.
    pub fn init(&self, line_device_base: DeviceId) {
        self.devices().number_devices(line_device_base);
    }

    /// `providerCreateLineDevice`.
    pub fn create_line_device(&self, temp_id: usize, device: DeviceId) -> Result<(), LineErr> {
        self.devices().create_device(temp_id, device)
    }

    /// `providerShutdown`: closes the connection and ends the thread.
    pub fn shutdown(&self) {
        let engine = self
            .engine
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(engine) = engine {
            engine.shutdown();
        }
    }

    /// Whether `device` is one of this instance's.
    pub fn owns_device(&self, device: DeviceId) -> bool {
        self.devices().line_of_device(device).is_some()
    }

    /// The line behind a device id.
    pub fn line_of_device(&self, device: DeviceId) -> Result<LineId, LineErr> {
        self.devices()
            .line_of_device(device)
            .map(|line| line.id)
            .ok_or(line_err(LINEERR_NODEVICE))
    }

    /// The device id of an open line, for `lineGetID`.
    pub fn device_of_line(&self, line: LineId) -> Result<DeviceId, LineErr> {
        let devices = self.devices();
        devices.open_line_dto(line)?;
        devices.device_of(line).ok_or(line_err(LINEERR_NODEVICE))
    }

    pub fn dev_caps(&self, device: DeviceId, version: u32, buf: &mut [u8]) -> Result<(), LineErr> {
        let devices = self.devices();
        let line = devices
            .line_of_device(device)
            .ok_or(line_err(LINEERR_NODEVICE))?;
        structs::dev_caps(buf, version, line, devices.capabilities(line))
    }

    pub fn address_caps(
        &self,
        device: DeviceId,
        address: u32,
        buf: &mut [u8],
    ) -> Result<(), LineErr> {
        if address != 0 {
            return Err(line_err(LINEERR_INVALADDRESSID));
        }
        let devices = self.devices();
        let line = devices
            .line_of_device(device)
            .ok_or(line_err(LINEERR_NODEVICE))?;
        structs::address_caps(buf, device, line, devices.capabilities(line))
    }

    pub fn line_status(&self, line: LineId, buf: &mut [u8]) -> Result<(), LineErr> {
        let devices = self.devices();
        let dto = devices.open_line_dto(line)?;
        let counts = CallCounts::of(devices.calls_on(line));
        structs::line_status(
            buf,
            devices.capabilities(dto),
            devices.in_service(line),
            counts,
        )
    }

    pub fn address_status(
        &self,
        line: LineId,
        address: u32,
        buf: &mut [u8],
    ) -> Result<(), LineErr> {
        if address != 0 {
            return Err(line_err(LINEERR_INVALADDRESSID));
        }
        let devices = self.devices();
        let dto = devices.open_line_dto(line)?;
        let counts = CallCounts::of(devices.calls_on(line));
        structs::address_status(
            buf,
            dto,
            devices.capabilities(dto),
            devices.in_service(line),
            counts,
        )
    }

    /// The extension of an address, for `lineGetAddressID`.
    pub fn address_id(&self, line: LineId, address: &str) -> Result<u32, LineErr> {
        let devices = self.devices();
        let dto = devices.open_line_dto(line)?;
        if dto.address == address {
            Ok(0)
        } else {
            Err(line_err(LINEERR_INVALADDRESS))
        }
    }

    pub fn call_info(&self, call: CallHandle, buf: &mut [u8]) -> Result<(), LineErr> {
        let devices = self.devices();
        let slot = devices.call(call)?;
        let device = devices
            .device_of(slot.line)
            .ok_or(line_err(LINEERR_NODEVICE))?;
        match (&slot.dto, slot.placeholder) {
            (Some(dto), _) => structs::call_info(buf, device, slot, dto),
            // A placeholder borrows its original's parties until the server has it; a call
            // in dial tone has only its own line as the caller.
            (None, Some(placeholder)) => match placeholder.original() {
                Some(original) => {
                    let original = devices.call(original)?;
                    let dto = original
                        .dto
                        .as_ref()
                        .ok_or(line_err(LINEERR_INVALCALLHANDLE))?;
                    structs::call_info(buf, device, slot, dto)
                }
                None => {
                    let line = devices
                        .line_dto(slot.line)
                        .ok_or(line_err(LINEERR_INVALCALLHANDLE))?;
                    structs::call_info(buf, device, slot, &structs::dialtone_call(line))
                }
            },
            (None, None) => Err(line_err(LINEERR_INVALCALLHANDLE)),
        }
    }

    pub fn call_status(&self, call: CallHandle, buf: &mut [u8]) -> Result<(), LineErr> {
        let devices = self.devices();
        let slot = devices.call(call)?;
        let line = devices
            .line_dto(slot.line)
            .ok_or(line_err(LINEERR_INVALCALLHANDLE))?;
        let can_conference = structs::can(devices.capabilities(line), "conference");
        structs::call_status(buf, slot, can_conference)
    }

    /// The line a call is on, for `lineGetCallAddressID` and the exports' handle checks.
    pub fn line_of_call(&self, call: CallHandle) -> Result<LineId, LineErr> {
        Ok(self.devices().call(call)?.line)
    }

    pub fn set_app_specific(&self, call: CallHandle, value: u32) -> Result<(), LineErr> {
        self.devices().call_mut(call)?.app_specific = value;
        Ok(())
    }

    /// `lineOpen`: calls already on the line are announced right after.
    pub fn open(&self, device: DeviceId, open: OpenLine) -> Result<LineId, LineErr> {
        let (line, notices) = self.devices().open(device, open)?;
        self.deliver(notices);
        Ok(line)
    }

    pub fn close(&self, line: LineId) -> Result<(), LineErr> {
        let notices = self.devices().close(line)?;
        self.deliver(notices);
        Ok(())
    }

    pub fn close_call(&self, call: CallHandle) -> Result<(), LineErr> {
        let notices = self.devices().close_call(call)?;
        self.deliver(notices);
        Ok(())
    }

    /// Sends a registered command; the request id is what the TSPI function returns.
    fn sent(&self, request: u32, outgoing: Result<Outgoing, LineErr>) -> Result<u32, LineErr> {
        let outgoing = outgoing?;
        self.with_engine(|engine| engine.send(outgoing));
        Ok(request)
    }

    /// An async request on one call.
    fn call_request(
        &self,
        request: u32,
        call: CallHandle,
        command: impl FnOnce(u64) -> CommandDto,
    ) -> Result<u32, LineErr> {
        let outgoing = {
            let mut devices = self.devices();
            let line = devices.call(call)?.line;
            let tapir = devices.tapir_call(call)?;
            devices.request(request, line, Some(call), command(tapir))
        };
        self.sent(request, outgoing)
    }

    /// An async request that creates a call on `line`; returns the new handle, valid once the
    /// request completes.
    fn creating_request(
        &self,
        request: u32,
        line: LineId,
        tapi_call: usize,
        publish: Publish,
        command: impl FnOnce(&Devices) -> Result<CommandDto, LineErr>,
    ) -> Result<CallHandle, LineErr> {
        let (handle, outgoing) = {
            let mut devices = self.devices();
            devices.open_line_dto(line)?;
            let command = command(&devices)?;
            let handle = devices.reserve_call(line, tapi_call);
            let outgoing = devices.request_creating(request, line, handle, command);
            (handle, outgoing)
        };
        let outgoing = outgoing?;
        publish(handle);
        self.with_engine(|engine| engine.send(outgoing));
        Ok(handle)
    }

    pub fn make_call(
        &self,
        request: u32,
        line: LineId,
        tapi_call: usize,
        destination: Option<String>,
        publish: Publish,
    ) -> Result<CallHandle, LineErr> {
        match destination.filter(|d| !d.trim().is_empty()) {
            Some(to) => self.creating_request(request, line, tapi_call, publish, |_| {
                Ok(CommandDto::MakeCall { line, to })
            }),
            None => self.dialtone(request, line, tapi_call, publish),
        }
    }

    /// `lineMakeCall` without a number: a call in dial tone at once, placed on the PBX when
    /// `lineDial` gives the number.
    fn dialtone(
        &self,
        request: u32,
        line: LineId,
        tapi_call: usize,
        publish: Publish,
    ) -> Result<CallHandle, LineErr> {
        let (handle, mut notices) = {
            let mut devices = self.devices();
            let dto = devices.open_line_dto(line)?;
            if !structs::can(devices.capabilities(dto), "make_call") {
                return Err(line_err(LINEERR_OPERATIONUNAVAIL));
            }
            devices.placeholder(Placeholder::Dialtone { line }, tapi_call)?
        };
        publish(handle);
        notices.insert(0, Notice::Completion { request, result: 0 });
        self.deliver(notices);
        Ok(handle)
    }

    pub fn answer(&self, request: u32, call: CallHandle) -> Result<u32, LineErr> {
        self.call_request(request, call, |call| CommandDto::Answer { call })
    }

    pub fn accept(&self, request: u32, call: CallHandle) -> Result<u32, LineErr> {
        self.call_request(request, call, |call| CommandDto::Accept { call })
    }

    /// `lineDrop`; a consultation placeholder nobody dialled simply goes idle.
    pub fn drop_call(&self, request: u32, call: CallHandle) -> Result<u32, LineErr> {
        let placeholder = self.devices().drop_placeholder(call);
        if let Some(mut notices) = placeholder {
            notices.insert(0, Notice::Completion { request, result: 0 });
            self.deliver(notices);
            return Ok(request);
        }
        self.call_request(request, call, |call| CommandDto::Drop { call })
    }

    pub fn hold(&self, request: u32, call: CallHandle) -> Result<u32, LineErr> {
        self.call_request(request, call, |call| CommandDto::Hold { call })
    }

    pub fn unhold(&self, request: u32, call: CallHandle) -> Result<u32, LineErr> {
        self.call_request(request, call, |call| CommandDto::Unhold { call })
    }

    pub fn swap_hold(
        &self,
        request: u32,
        active: CallHandle,
        held: CallHandle,
    ) -> Result<u32, LineErr> {
        let held = self.devices().tapir_call(held)?;
        self.call_request(request, active, |call| CommandDto::Swap {
            call,
            with: Some(held),
        })
    }

    pub fn blind_transfer(
        &self,
        request: u32,
        call: CallHandle,
        to: String,
    ) -> Result<u32, LineErr> {
        self.call_request(request, call, |call| CommandDto::Transfer { call, to })
    }

    pub fn redirect(&self, request: u32, call: CallHandle, to: String) -> Result<u32, LineErr> {
        self.call_request(request, call, |call| CommandDto::Redirect { call, to })
    }

    /// `lineSetupTransfer`: a consultation call in dial tone, dialled by `lineDial`.
    pub fn setup_transfer(
        &self,
        request: u32,
        call: CallHandle,
        tapi_consult: usize,
        publish: Publish,
    ) -> Result<CallHandle, LineErr> {
        let consultation = Placeholder::Consultation { original: call };
        let (handle, mut notices) = self.devices().placeholder(consultation, tapi_consult)?;
        publish(handle);
        notices.insert(0, Notice::Completion { request, result: 0 });
        self.deliver(notices);
        Ok(handle)
    }

    /// `lineSetupConference` from an existing call: a conference call on hold pending the
    /// conference and a consultation in dial tone; `lineDial` dials the consultation and
    /// `lineAddToConference` joins it. Returns (conference, consultation).
    pub fn setup_conference(
        &self,
        request: u32,
        call: CallHandle,
        tapi_conference: usize,
        tapi_consult: usize,
        publish: &dyn Fn(CallHandle, CallHandle),
    ) -> Result<(CallHandle, CallHandle), LineErr> {
        let (conference, consultation, notices) = {
            let mut devices = self.devices();
            let (conference, mut notices) =
                devices.placeholder(Placeholder::Conference { original: call }, tapi_conference)?;
            let (consultation, more) =
                devices.placeholder(Placeholder::Consultation { original: call }, tapi_consult)?;
            notices.extend(more);
            (conference, consultation, notices)
        };
        publish(conference, consultation);
        let mut all = vec![Notice::Completion { request, result: 0 }];
        all.extend(notices);
        self.deliver(all);
        Ok((conference, consultation))
    }

    /// `lineAddToConference`: the server joins the consultation and its original into a
    /// conference, which becomes the conference call TAPI set up.
    pub fn add_to_conference(
        &self,
        request: u32,
        conference: CallHandle,
        consultation: CallHandle,
    ) -> Result<u32, LineErr> {
        let outgoing = {
            let mut devices = self.devices();
            let slot = devices.call(conference)?;
            if !matches!(slot.placeholder, Some(Placeholder::Conference { .. }))
                || slot.tapir.is_some()
            {
                // tapir's conferences hold three parties: one consultation, once.
                return Err(line_err(LINEERR_OPERATIONUNAVAIL));
            }
            let line = slot.line;
            let joined = devices.tapir_call(consultation)?;
            devices.request_creating(
                request,
                line,
                conference,
                CommandDto::Conference { call: joined },
            )
        };
        self.sent(request, outgoing)
    }

    /// `lineDial`: on a call in dial tone it makes the call; on a consultation placeholder
    /// it starts the consultation; on a connected call the digits go as DTMF.
    pub fn dial(&self, request: u32, call: CallHandle, to: String) -> Result<u32, LineErr> {
        let outgoing = {
            let mut devices = self.devices();
            let slot = devices.call(call)?;
            let line = slot.line;
            match (slot.placeholder, slot.tapir) {
                (Some(Placeholder::Dialtone { .. }), None) => {
                    devices.bind_placeholder(call);
                    devices.request_creating(request, line, call, CommandDto::MakeCall { line, to })
                }
                (Some(Placeholder::Consultation { original }), None) => {
                    let original = devices.tapir_call(original)?;
                    devices.bind_placeholder(call);
                    devices.request_creating(
                        request,
                        line,
                        call,
                        CommandDto::Consult { call: original, to },
                    )
                }
                (_, Some(tapir)) => devices.request(
                    request,
                    line,
                    Some(call),
                    CommandDto::GenerateDigits {
                        call: tapir,
                        digits: to,
                    },
                ),
                (_, None) => Err(line_err(LINEERR_INVALCALLSTATE)),
            }
        };
        self.sent(request, outgoing)
    }

    /// `lineCompleteTransfer`: a transfer, or a conference (whose call is created).
    pub fn complete_transfer(
        &self,
        request: u32,
        call: CallHandle,
        consultation: CallHandle,
        tapi_conference: usize,
        mode: u32,
        publish: Publish,
    ) -> Result<Option<CallHandle>, LineErr> {
        let consultation = self.devices().tapir_call(consultation)?;
        match mode {
            LINETRANSFERMODE_TRANSFER => {
                self.call_request(request, call, |_| CommandDto::CompleteTransfer {
                    call: consultation,
                })?;
                Ok(None)
            }
            LINETRANSFERMODE_CONFERENCE => {
                let line = self.line_of_call(call)?;
                let handle =
                    self.creating_request(request, line, tapi_conference, publish, |_| {
                        Ok(CommandDto::Conference { call: consultation })
                    })?;
                Ok(Some(handle))
            }
            _ => Err(line_err(LINEERR_INVALTRANSFERMODE)),
        }
    }

    /// `linePickup`: takes the call ringing at the extension `from` onto `line`.
    pub fn pickup(
        &self,
        request: u32,
        line: LineId,
        tapi_call: usize,
        from: Option<String>,
        publish: Publish,
    ) -> Result<CallHandle, LineErr> {
        let from = from
            .filter(|f| !f.trim().is_empty())
            .ok_or(line_err(LINEERR_OPERATIONUNAVAIL))?;
        self.creating_request(request, line, tapi_call, publish, |devices| {
            let near = devices.open_line_dto(line)?;
            let from_line = devices
                .line_by_address(&from, near)
                .ok_or(line_err(LINEERR_INVALADDRESS))?;
            Ok(CommandDto::Pickup {
                line,
                call: None,
                from_line: Some(from_line),
            })
        })
    }

    /// `lineUnpark`: takes the call parked at `from` onto `line`.
    pub fn unpark(
        &self,
        request: u32,
        line: LineId,
        tapi_call: usize,
        from: String,
        publish: Publish,
    ) -> Result<CallHandle, LineErr> {
        self.creating_request(request, line, tapi_call, publish, |_| {
            Ok(CommandDto::Unpark { line, from })
        })
    }

    /// `linePark`, directed (to `to`).
    pub fn park(&self, request: u32, call: CallHandle, to: String) -> Result<u32, LineErr> {
        self.call_request(request, call, |call| CommandDto::Park {
            call,
            to: Some(to),
        })
    }

    /// `linePark`, non-directed: the PBX chooses the place, which goes into `place` before
    /// the completion.
    pub fn park_nondirected(
        &self,
        request: u32,
        call: CallHandle,
        place: PlaceBuffer,
    ) -> Result<u32, LineErr> {
        let outgoing = {
            let mut devices = self.devices();
            let line = devices.call(call)?.line;
            let tapir = devices.tapir_call(call)?;
            let park = CommandDto::Park {
                call: tapir,
                to: None,
            };
            devices.request_park(request, line, call, park, place)
        };
        self.sent(request, outgoing)
    }

    /// `lineGenerateDigits`: completes with `LINE_GENERATE`.
    pub fn generate_digits(
        &self,
        call: CallHandle,
        end_to_end: u32,
        digits: String,
    ) -> Result<(), LineErr> {
        let outgoing = self.devices().generate_digits(call, end_to_end, digits)?;
        self.with_engine(|engine| engine.send(outgoing));
        Ok(())
    }

    /// `lineForward`: `None` cancels forwarding and do-not-disturb; an unconditional entry
    /// without a destination is do-not-disturb (TAPI 2's way of saying it).
    pub fn forward(
        &self,
        request: u32,
        line: LineId,
        entries: Option<Vec<ForwardEntry>>,
    ) -> Result<u32, LineErr> {
        let entries = entries.unwrap_or_default();
        let dnd = entries
            .iter()
            .any(|e| e.mode == LINEFORWARDMODE_UNCOND && e.destination.is_empty());
        let mut forwards = Vec::new();
        for entry in entries.iter().filter(|e| !e.destination.is_empty()) {
            let mode = match entry.mode {
                LINEFORWARDMODE_UNCOND => "unconditional",
                LINEFORWARDMODE_BUSY => "busy",
                LINEFORWARDMODE_NOANSW => "no_answer",
                _ => return Err(line_err(LINEERR_INVALPARAM)),
            };
            forwards.push(ForwardDto {
                mode: mode.into(),
                destination: entry.destination.clone(),
            });
        }
        if dnd && !forwards.is_empty() {
            return Err(line_err(LINEERR_INVALPARAM));
        }
        let (first, outgoing) = {
            let mut devices = self.devices();
            let dto = devices.open_line_dto(line)?;
            let cancel_all = entries.is_empty();
            let (had_dnd, had_forwards) = (dto.do_not_disturb, !dto.forwards.is_empty());
            let dnd_off = CommandDto::SetDnd {
                line,
                enabled: false,
            };
            match (dnd, cancel_all && had_dnd, cancel_all && had_forwards) {
                (true, _, _) => (
                    None,
                    devices.request(
                        request,
                        line,
                        None,
                        CommandDto::SetDnd {
                            line,
                            enabled: true,
                        },
                    ),
                ),
                // Cancelling both takes two commands; the second completes the request.
                (false, true, true) => {
                    let first = devices.first_half(line, dnd_off)?;
                    let second = CommandDto::SetForwards { line, forwards };
                    (Some(first), devices.request(request, line, None, second))
                }
                (false, true, false) => (None, devices.request(request, line, None, dnd_off)),
                (false, false, _) => {
                    let command = CommandDto::SetForwards { line, forwards };
                    (None, devices.request(request, line, None, command))
                }
            }
        };
        if let Some(first) = first {
            self.with_engine(|engine| engine.send(first));
        }
        self.sent(request, outgoing)
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.shutdown();
    }
}
