//! tapir's lines and calls as TAPI line devices and call handles.
//!
//! [`Devices`] mirrors what the server sends (snapshots and events) and keeps TAPI's side of
//! each line and call: device ids, open lines, the handles TAPISRV gave us, the state last
//! reported and the requests in flight. Every change returns the [`Notice`]s TAPISRV must get,
//! in order; the caller delivers them outside the lock. Nothing here does I/O, so the rules
//! (`LINE_NEWCALL` before any state of a call TAPI did not create, one `LINE_CALLSTATE` per
//! state, no events for a call before its creating request completes, every request completed
//! exactly once) are tested natively.

use std::collections::{BTreeMap, HashMap};

use tapir_wire::{CallDto, CommandDto, ErrorDto, EventDto, InstanceDto, LineDto, SnapshotDto};
use windows_sys::Win32::Devices::Tapi::{
    LINECALLSTATE_CONFERENCED, LINECALLSTATE_DIALTONE, LINECALLSTATE_IDLE,
    LINECALLSTATE_ONHOLDPENDCONF, LINEDEVSTATE_INSERVICE, LINEDEVSTATE_OUTOFSERVICE,
    LINEERR_CALLUNAVAIL, LINEERR_INVALCALLHANDLE, LINEERR_INVALLINEHANDLE, LINEERR_OPERATIONFAILED,
    LINEERR_RESOURCEUNAVAIL, LINEGENERATETERM_CANCEL, LINEGENERATETERM_DONE,
};

use crate::structs::PlaceBuffer;

/// A TAPI line device id (`dwDeviceID`), given by TAPISRV.
pub type DeviceId = u32;
/// tapir's permanent line id; also the TSP's line handle (`HDRVLINE`).
pub type LineId = u32;
/// The TSP's call handle (`HDRVCALL`).
pub type CallHandle = usize;
/// A negative `LINEERR_*` as TSPI functions return it.
pub type LineErr = i32;

/// A `LINEERR_*` constant as the negative `LONG` the TSPI returns.
pub const fn line_err(code: u32) -> LineErr {
    code as i32
}

/// TAPISRV's handles and event procedure for an open line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenLine {
    /// `HTAPILINE`.
    pub tapi_line: usize,
    /// The `LINEEVENT` procedure given at `TSPI_lineOpen`, as an address.
    pub event_proc: usize,
}

/// One message for TAPISRV, in the order it must be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// `ASYNC_COMPLETION(request, result)`.
    Completion { request: u32, result: LineErr },
    /// `LINE_CREATE` with a temporary id; TAPISRV answers with `providerCreateLineDevice`.
    LineCreate { temp_id: usize },
    /// `LINE_REMOVE`.
    LineRemove { device: DeviceId },
    /// `LINE_LINEDEVSTATE` on an open line.
    LineDevState { line: LineId, state: u32 },
    /// `LINE_NEWCALL`: TAPISRV writes its call handle back.
    NewCall { line: LineId, call: CallHandle },
    /// `LINE_CALLSTATE`; `conference` names the parent of a conferenced call.
    CallState {
        line: LineId,
        call: CallHandle,
        state: u32,
        mode: u32,
        conference: Option<CallHandle>,
    },
    /// `LINE_CALLINFO` with the `LINECALLINFOSTATE_*` bits that changed.
    CallInfo {
        line: LineId,
        call: CallHandle,
        changed: u32,
    },
    /// Where a non-directed park put the call, written into TAPISRV's buffer before the
    /// request's completion.
    Parked { buffer: PlaceBuffer, place: String },
    /// `LINE_GENERATE`: digits generated (or not) for `lineGenerateDigits`.
    Generate {
        line: LineId,
        call: CallHandle,
        termination: u32,
        end_to_end: u32,
    },
}

/// A command to send to the server, with the id its result will carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub id: String,
    pub command: CommandDto,
}

/// What a request in flight does when its result comes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Completes {
    /// An async TSPI request: `ASYNC_COMPLETION`.
    Request { request: u32 },
    /// A request that creates `call`: the handle becomes valid (or is dropped) with it.
    CreatesCall { request: u32, call: CallHandle },
    /// `lineGenerateDigits`: `LINE_GENERATE` on the call.
    Digits { call: CallHandle, end_to_end: u32 },
    /// A non-directed `linePark`: the place the server names goes into `buffer` first.
    Park { request: u32, buffer: PlaceBuffer },
    /// The first half of a request that takes two commands; the second completes it.
    FirstHalf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    completes: Completes,
    /// The line whose close abandons the request.
    line: LineId,
    /// The call whose close abandons the request.
    call: Option<CallHandle>,
}

#[derive(Debug)]
struct LineSlot {
    dto: LineDto,
    device: Option<DeviceId>,
    open: Option<OpenLine>,
    /// The service state last reported to TAPISRV for the open line.
    reported_in_service: bool,
}

impl LineSlot {
    fn present(&self) -> bool {
        self.dto.status != "defunct"
    }
}

/// A call that exists for TAPI before the server has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// `lineMakeCall` without a number: dial tone until `lineDial` makes the call. The PBX
    /// is asked only then (tapir places calls by number; going off-hook needs the handset).
    Dialtone { line: LineId },
    /// `lineSetupTransfer` or `lineSetupConference`'s consultation: dial tone until `lineDial`.
    Consultation { original: CallHandle },
    /// `lineSetupConference`'s conference call: on hold pending the conference until
    /// `lineAddToConference` creates it on the server.
    Conference { original: CallHandle },
}

impl Placeholder {
    /// The call this one was set up from, if any.
    pub fn original(self) -> Option<CallHandle> {
        match self {
            Placeholder::Dialtone { .. } => None,
            Placeholder::Consultation { original } | Placeholder::Conference { original } => {
                Some(original)
            }
        }
    }
}

/// One call handle the TSP gave out.
#[derive(Debug)]
pub struct CallSlot {
    pub line: LineId,
    /// TAPISRV's `HTAPICALL`; 0 until `LINE_NEWCALL` returned it.
    pub tapi_call: usize,
    /// tapir's call id, once known.
    pub tapir: Option<u64>,
    /// The call as the server last described it.
    pub dto: Option<CallDto>,
    /// Set by `lineSetAppSpecific`.
    pub app_specific: u32,
    /// Created by TAPI (make call, unpark, ...) and not yet confirmed: no events may be sent.
    pending: bool,
    /// A call TAPI set up that the server does not have yet.
    pub placeholder: Option<Placeholder>,
    /// The state and mode last reported.
    reported: Option<(u32, u32)>,
}

impl CallSlot {
    /// The state and mode as TAPI sees them now.
    pub fn state(&self) -> (u32, u32) {
        match (&self.dto, self.placeholder) {
            (Some(call), _) => (call.state_bits, call.mode_bits),
            (None, Some(Placeholder::Dialtone { .. } | Placeholder::Consultation { .. })) => {
                (LINECALLSTATE_DIALTONE, 0)
            }
            (None, Some(Placeholder::Conference { .. })) => (LINECALLSTATE_ONHOLDPENDCONF, 0),
            (None, None) => (LINECALLSTATE_IDLE, 0),
        }
    }
}

/// TAPI's view of the lines and calls the server shows this TSP.
#[derive(Debug, Default)]
pub struct Devices {
    lines: BTreeMap<LineId, LineSlot>,
    instances: HashMap<String, InstanceDto>,
    /// Every live call the server reported, open line or not (announced at `lineOpen`).
    calls: HashMap<u64, CallDto>,
    slots: HashMap<CallHandle, CallSlot>,
    by_tapir_call: HashMap<u64, CallHandle>,
    next_call: CallHandle,
    temp_ids: HashMap<usize, LineId>,
    next_temp_id: usize,
    pending: HashMap<String, Pending>,
    next_outgoing: u64,
    connected: bool,
    /// Set at `providerEnumDevices`: lines that come later are announced by `LINE_CREATE`.
    enumerated: bool,
    last_seq: u64,
    epoch: u64,
}

impl Devices {
    pub fn new() -> Devices {
        Devices::default()
    }

    /// Whether the server's stream is live.
    pub fn connected(&self) -> bool {
        self.connected
    }

    /// Where to resume the event stream from after a reconnect.
    pub fn resume_point(&self) -> Option<(u64, u64)> {
        (self.epoch != 0 || self.last_seq != 0).then_some((self.last_seq, self.epoch))
    }

    /// `providerEnumDevices`: the lines known now become devices `base..`, in line id order;
    /// returns how many.
    pub fn enumerate(&mut self) -> u32 {
        self.enumerated = true;
        self.lines.values().filter(|slot| slot.present()).count() as u32
    }

    /// `providerInit`: number the enumerated lines from `base`.
    pub fn number_devices(&mut self, base: DeviceId) {
        let mut next = base;
        for slot in self.lines.values_mut().filter(|slot| slot.present()) {
            if slot.device.is_none() {
                slot.device = Some(next);
                next += 1;
            }
        }
    }

    /// `providerCreateLineDevice`: the device id for a line announced by `LINE_CREATE`.
    pub fn create_device(&mut self, temp_id: usize, device: DeviceId) -> Result<(), LineErr> {
        let line = self
            .temp_ids
            .remove(&temp_id)
            .ok_or(line_err(LINEERR_OPERATIONFAILED))?;
        let slot = self
            .lines
            .get_mut(&line)
            .ok_or(line_err(LINEERR_OPERATIONFAILED))?;
        slot.device = Some(device);
        Ok(())
    }

    /// The line behind a device id.
    pub fn line_of_device(&self, device: DeviceId) -> Option<&LineDto> {
        self.lines
            .values()
            .find(|slot| slot.device == Some(device))
            .map(|slot| &slot.dto)
    }

    pub fn device_of(&self, line: LineId) -> Option<DeviceId> {
        self.lines.get(&line).and_then(|slot| slot.device)
    }

    /// A line by its id.
    pub fn line_dto(&self, line: LineId) -> Option<&LineDto> {
        self.lines.get(&line).map(|slot| &slot.dto)
    }

    /// The line of an open line handle.
    pub fn open_line_dto(&self, line: LineId) -> Result<&LineDto, LineErr> {
        match self.lines.get(&line) {
            Some(slot) if slot.open.is_some() => Ok(&slot.dto),
            _ => Err(line_err(LINEERR_INVALLINEHANDLE)),
        }
    }

    /// TAPISRV's handles for an open line.
    pub fn open_line(&self, line: LineId) -> Option<OpenLine> {
        self.lines.get(&line).and_then(|slot| slot.open)
    }

    /// Whether the line can take commands now.
    pub fn in_service(&self, line: LineId) -> bool {
        self.connected
            && self
                .lines
                .get(&line)
                .is_some_and(|slot| slot.dto.status == "in_service")
    }

    /// The capabilities of the line's PBX link (wire names).
    pub fn capabilities(&self, line: &LineDto) -> &[String] {
        self.instances
            .get(&line.instance)
            .map(|i| i.capabilities.as_slice())
            .unwrap_or(&[])
    }

    /// Finds a present line by its extension, preferring the same instance as `near`.
    pub fn line_by_address(&self, address: &str, near: &LineDto) -> Option<LineId> {
        let mut candidates = self
            .lines
            .values()
            .filter(|slot| slot.present() && slot.dto.address == address);
        let first = candidates.next()?;
        if first.dto.instance == near.instance {
            return Some(first.dto.id);
        }
        candidates
            .find(|slot| slot.dto.instance == near.instance)
            .or(Some(first))
            .map(|slot| slot.dto.id)
    }

    /// `lineOpen`: returns the notices announcing the calls already on the line.
    pub fn open(
        &mut self,
        device: DeviceId,
        open: OpenLine,
    ) -> Result<(LineId, Vec<Notice>), LineErr> {
        let slot = self
            .lines
            .values_mut()
            .find(|slot| slot.device == Some(device) && slot.present())
            .ok_or(line_err(LINEERR_OPERATIONFAILED))?;
        if slot.open.is_some() {
            return Err(line_err(LINEERR_RESOURCEUNAVAIL));
        }
        slot.open = Some(open);
        let line = slot.dto.id;
        slot.reported_in_service = self.connected && slot.dto.status == "in_service";
        let mut notices = Vec::new();
        let mut existing: Vec<CallDto> = self
            .calls
            .values()
            .filter(|call| call.line == line)
            .cloned()
            .collect();
        existing.sort_by_key(|call| call.id);
        for call in existing {
            self.upsert_call(call, 0, &mut notices);
        }
        Ok((line, notices))
    }

    /// `lineClose`: forgets the line's calls and fails its requests in flight.
    pub fn close(&mut self, line: LineId) -> Result<Vec<Notice>, LineErr> {
        let slot = self
            .lines
            .get_mut(&line)
            .filter(|slot| slot.open.is_some())
            .ok_or(line_err(LINEERR_INVALLINEHANDLE))?;
        slot.open = None;
        let handles: Vec<CallHandle> = self
            .slots
            .iter()
            .filter(|(_, slot)| slot.line == line)
            .map(|(handle, _)| *handle)
            .collect();
        for handle in handles {
            self.forget_call(handle);
        }
        Ok(self.abandon(|pending| pending.line == line))
    }

    /// `lineCloseCall`: the handle is gone; requests on it fail.
    pub fn close_call(&mut self, call: CallHandle) -> Result<Vec<Notice>, LineErr> {
        if !self.slots.contains_key(&call) {
            return Err(line_err(LINEERR_INVALCALLHANDLE));
        }
        self.forget_call(call);
        Ok(self.abandon(|pending| pending.call == Some(call)))
    }

    fn forget_call(&mut self, call: CallHandle) {
        if let Some(slot) = self.slots.remove(&call)
            && let Some(id) = slot.tapir
        {
            self.by_tapir_call.remove(&id);
        }
    }

    /// A call handle on an open line.
    pub fn call(&self, call: CallHandle) -> Result<&CallSlot, LineErr> {
        self.slots
            .get(&call)
            .filter(|slot| !slot.pending)
            .ok_or(line_err(LINEERR_INVALCALLHANDLE))
    }

    pub fn call_mut(&mut self, call: CallHandle) -> Result<&mut CallSlot, LineErr> {
        self.slots
            .get_mut(&call)
            .filter(|slot| !slot.pending)
            .ok_or(line_err(LINEERR_INVALCALLHANDLE))
    }

    /// tapir's id of a call handle, for commands.
    pub fn tapir_call(&self, call: CallHandle) -> Result<u64, LineErr> {
        self.call(call)?.tapir.ok_or(line_err(LINEERR_CALLUNAVAIL))
    }

    /// The calls on a line, for the status structures.
    pub fn calls_on(&self, line: LineId) -> impl Iterator<Item = &CallSlot> {
        self.slots
            .values()
            .filter(move |slot| slot.line == line && !slot.pending)
    }

    /// The handle TAPISRV gave for `LINE_NEWCALL` (0: it could not take the call).
    pub fn bind_tapi_call(&mut self, call: CallHandle, tapi_call: usize) {
        if tapi_call == 0 {
            self.forget_call(call);
        } else if let Some(slot) = self.slots.get_mut(&call) {
            slot.tapi_call = tapi_call;
        }
    }

    /// A new handle for a call TAPI creates (`lineMakeCall`, `lineUnpark`, ...): invalid
    /// for events until the request completes.
    pub fn reserve_call(&mut self, line: LineId, tapi_call: usize) -> CallHandle {
        let handle = self.new_handle();
        self.slots.insert(
            handle,
            CallSlot {
                line,
                tapi_call,
                tapir: None,
                dto: None,
                app_specific: 0,
                pending: true,
                placeholder: None,
                reported: None,
            },
        );
        handle
    }

    /// A call for TAPI that the server does not have yet (see [`Placeholder`]), valid at
    /// once, in its local state.
    pub fn placeholder(
        &mut self,
        kind: Placeholder,
        tapi_call: usize,
    ) -> Result<(CallHandle, Vec<Notice>), LineErr> {
        let line = match kind {
            Placeholder::Dialtone { line } => {
                self.open_line_dto(line)?;
                if !self.in_service(line) {
                    return Err(line_err(LINEERR_RESOURCEUNAVAIL));
                }
                line
            }
            Placeholder::Consultation { original } | Placeholder::Conference { original } => {
                self.call(original)?.line
            }
        };
        let handle = self.new_handle();
        let slot = CallSlot {
            line,
            tapi_call,
            tapir: None,
            dto: None,
            app_specific: 0,
            pending: false,
            placeholder: Some(kind),
            reported: None,
        };
        let (state, _) = slot.state();
        let mode = if state == LINECALLSTATE_DIALTONE {
            windows_sys::Win32::Devices::Tapi::LINEDIALTONEMODE_NORMAL
        } else {
            0
        };
        self.slots.insert(
            handle,
            CallSlot {
                reported: Some((state, 0)),
                ..slot
            },
        );
        let notices = vec![Notice::CallState {
            line,
            call: handle,
            state,
            mode,
            conference: None,
        }];
        Ok((handle, notices))
    }

    /// Drops a placeholder nobody dialled on: it goes idle without the server.
    pub fn drop_placeholder(&mut self, call: CallHandle) -> Option<Vec<Notice>> {
        let slot = self.slots.get_mut(&call)?;
        if slot.placeholder.is_none() || slot.tapir.is_some() {
            return None;
        }
        slot.placeholder = None;
        slot.reported = Some((LINECALLSTATE_IDLE, 0));
        Some(vec![Notice::CallState {
            line: slot.line,
            call,
            state: LINECALLSTATE_IDLE,
            mode: 0,
            conference: None,
        }])
    }

    fn new_handle(&mut self) -> CallHandle {
        self.next_call += 1;
        self.next_call
    }

    /// Registers an async request and returns what to send; fails at once when the server is
    /// unreachable, so the request is completed exactly once either way.
    pub fn request(
        &mut self,
        request: u32,
        line: LineId,
        call: Option<CallHandle>,
        command: CommandDto,
    ) -> Result<Outgoing, LineErr> {
        self.send(Completes::Request { request }, line, call, command)
    }

    /// Like [`Devices::request`] for a request that creates `created` (see
    /// [`Devices::reserve_call`]).
    pub fn request_creating(
        &mut self,
        request: u32,
        line: LineId,
        created: CallHandle,
        command: CommandDto,
    ) -> Result<Outgoing, LineErr> {
        let sent = self.send(
            Completes::CreatesCall {
                request,
                call: created,
            },
            line,
            Some(created),
            command,
        );
        if sent.is_err() {
            self.creation_failed(created);
        }
        sent
    }

    /// A request that was to create the server's call for `call` failed: a placeholder stays
    /// the user's (in its local state, to be dialled again or dropped); a handle reserved for
    /// the request goes.
    fn creation_failed(&mut self, call: CallHandle) {
        match self.slots.get_mut(&call) {
            Some(slot) if slot.placeholder.is_some() => slot.pending = false,
            Some(slot) if slot.pending => {
                self.slots.remove(&call);
            }
            _ => {}
        }
    }

    /// A non-directed `linePark` of `call`: where the PBX parks it is written into `buffer`
    /// before the completion.
    pub fn request_park(
        &mut self,
        request: u32,
        line: LineId,
        call: CallHandle,
        command: CommandDto,
        buffer: PlaceBuffer,
    ) -> Result<Outgoing, LineErr> {
        self.send(
            Completes::Park { request, buffer },
            line,
            Some(call),
            command,
        )
    }

    /// A command that prepares `request`'s own (sent right after it): its failure is logged,
    /// the request completes with the second command.
    pub fn first_half(&mut self, line: LineId, command: CommandDto) -> Result<Outgoing, LineErr> {
        self.send(Completes::FirstHalf, line, None, command)
    }

    /// `lineGenerateDigits`: the result becomes `LINE_GENERATE`.
    pub fn generate_digits(
        &mut self,
        call: CallHandle,
        end_to_end: u32,
        digits: String,
    ) -> Result<Outgoing, LineErr> {
        let line = self.call(call)?.line;
        let tapir = self.tapir_call(call)?;
        self.send(
            Completes::Digits { call, end_to_end },
            line,
            Some(call),
            CommandDto::GenerateDigits {
                call: tapir,
                digits,
            },
        )
    }

    fn send(
        &mut self,
        completes: Completes,
        line: LineId,
        call: Option<CallHandle>,
        command: CommandDto,
    ) -> Result<Outgoing, LineErr> {
        if !self.in_service(line) {
            return Err(line_err(LINEERR_OPERATIONFAILED));
        }
        self.next_outgoing += 1;
        let id = format!("tsp-{}", self.next_outgoing);
        self.pending.insert(
            id.clone(),
            Pending {
                completes,
                line,
                call,
            },
        );
        Ok(Outgoing { id, command })
    }

    /// A command the engine could not send: completes like a lost connection.
    pub fn unsent(&mut self, id: &str) -> Vec<Notice> {
        match self.pending.remove(id) {
            Some(pending) => self.fail(pending),
            None => Vec::new(),
        }
    }

    /// The server's `result` for one of our commands.
    pub fn result(
        &mut self,
        id: &str,
        ok: bool,
        call: Option<u64>,
        parked_at: Option<&str>,
        error: Option<&ErrorDto>,
    ) -> Vec<Notice> {
        let Some(pending) = self.pending.remove(id) else {
            return Vec::new();
        };
        if !ok {
            let code = error
                .and_then(|e| e.lineerr)
                .map(|code| code as i32)
                .filter(|code| *code < 0)
                .unwrap_or(line_err(LINEERR_OPERATIONFAILED));
            return self.complete_failed(pending, code);
        }
        let mut notices = Vec::new();
        match pending.completes {
            Completes::Request { request } => {
                notices.push(Notice::Completion { request, result: 0 })
            }
            Completes::Park { request, buffer } => {
                notices.push(Notice::Parked {
                    buffer,
                    place: parked_at.unwrap_or_default().to_owned(),
                });
                notices.push(Notice::Completion { request, result: 0 });
            }
            Completes::Digits { call, end_to_end } => notices.push(Notice::Generate {
                line: pending.line,
                call,
                termination: LINEGENERATETERM_DONE,
                end_to_end,
            }),
            Completes::CreatesCall {
                request,
                call: handle,
            } => {
                notices.push(Notice::Completion { request, result: 0 });
                self.confirm_created(handle, call, &mut notices);
            }
            Completes::FirstHalf => {}
        }
        notices
    }

    /// The created call's handle becomes valid, bound to tapir's call (which a placeholder
    /// may already have been for the user).
    fn confirm_created(&mut self, handle: CallHandle, tapir: Option<u64>, out: &mut Vec<Notice>) {
        let Some(slot) = self.slots.get_mut(&handle) else {
            return;
        };
        slot.pending = false;
        let Some(id) = tapir else {
            return;
        };
        slot.tapir = Some(id);
        self.by_tapir_call.insert(id, handle);
        if let Some(call) = self.calls.get(&id).cloned() {
            self.upsert_call(call, 0, out);
        }
    }

    fn complete_failed(&mut self, pending: Pending, code: LineErr) -> Vec<Notice> {
        match pending.completes {
            Completes::Request { request } | Completes::Park { request, .. } => {
                vec![Notice::Completion {
                    request,
                    result: code,
                }]
            }
            Completes::CreatesCall { request, call } => {
                self.creation_failed(call);
                vec![Notice::Completion {
                    request,
                    result: code,
                }]
            }
            Completes::Digits { call, end_to_end } => vec![Notice::Generate {
                line: pending.line,
                call,
                termination: LINEGENERATETERM_CANCEL,
                end_to_end,
            }],
            Completes::FirstHalf => {
                tracing::warn!(
                    line = pending.line,
                    code,
                    "the first of two commands failed"
                );
                Vec::new()
            }
        }
    }

    fn fail(&mut self, pending: Pending) -> Vec<Notice> {
        self.complete_failed(pending, line_err(LINEERR_OPERATIONFAILED))
    }

    /// Completes every request in flight that `which` selects as failed.
    fn abandon(&mut self, which: impl Fn(&Pending) -> bool) -> Vec<Notice> {
        let mut ids: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, pending)| which(pending))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        let mut notices = Vec::new();
        for id in ids {
            if let Some(pending) = self.pending.remove(&id) {
                notices.extend(self.fail(pending));
            }
        }
        notices
    }

    /// The server went away: requests in flight complete as failed (their outcome is
    /// unknown; none is sent again) and open lines go out of service.
    pub fn connection_lost(&mut self) -> Vec<Notice> {
        self.connected = false;
        let mut notices = self.abandon(|_| true);
        self.report_service(&mut notices);
        notices
    }

    /// The server answered after a reconnect that resumed the stream (no snapshot needed):
    /// open lines are in service again.
    pub fn resumed(&mut self) -> Vec<Notice> {
        self.connected = true;
        let mut notices = Vec::new();
        self.report_service(&mut notices);
        notices
    }

    /// TAPISRV's handles for a call on an open line, once TAPISRV gave its own.
    pub fn tapi_target(&self, line: LineId, call: CallHandle) -> Option<(OpenLine, usize)> {
        let open = self.open_line(line)?;
        let slot = self.slots.get(&call)?;
        (slot.tapi_call != 0).then_some((open, slot.tapi_call))
    }

    /// A snapshot replaces everything known: lines come and go, calls that ended while the
    /// stream was down go idle, calls that started are announced.
    pub fn apply_snapshot(&mut self, snapshot: SnapshotDto) -> Vec<Notice> {
        self.connected = true;
        self.epoch = snapshot.epoch;
        self.last_seq = snapshot.seq;
        self.instances = snapshot
            .instances
            .into_iter()
            .map(|i| (i.name.clone(), i))
            .collect();
        let mut notices = Vec::new();
        let listed: Vec<LineId> = snapshot.lines.iter().map(|line| line.id).collect();
        let gone: Vec<LineId> = self
            .lines
            .keys()
            .filter(|id| !listed.contains(id))
            .copied()
            .collect();
        for line in gone {
            self.remove_line(line, true, &mut notices);
        }
        for line in snapshot.lines {
            self.upsert_line(line, &mut notices);
        }
        let live: HashMap<u64, CallDto> = snapshot
            .calls
            .into_iter()
            .map(|call| (call.id, call))
            .collect();
        let ended: Vec<(u64, CallHandle)> = self
            .by_tapir_call
            .iter()
            .filter(|(id, _)| !live.contains_key(id))
            .map(|(id, handle)| (*id, *handle))
            .collect();
        for (_, handle) in ended {
            self.report_idle(handle, &mut notices);
        }
        self.calls.clear();
        let mut calls: Vec<CallDto> = live.into_values().collect();
        calls.sort_by_key(|call| call.id);
        for call in calls {
            self.upsert_call(call, 0, &mut notices);
        }
        self.report_service(&mut notices);
        notices
    }

    /// One event of the stream.
    pub fn apply_event(&mut self, seq: u64, event: EventDto) -> Vec<Notice> {
        self.last_seq = seq;
        let mut notices = Vec::new();
        match event {
            EventDto::LineCreated { line } | EventDto::LineChanged { line } => {
                self.upsert_line(line, &mut notices);
                self.report_service(&mut notices);
            }
            EventDto::LineRemoved { line, .. } => self.remove_line(line, false, &mut notices),
            EventDto::LinePurged { line, .. } => self.remove_line(line, true, &mut notices),
            EventDto::CallNew { call }
            | EventDto::CallState { call }
            | EventDto::CallFeatures { call } => self.upsert_call(call, 0, &mut notices),
            EventDto::CallInfo {
                call, changed_bits, ..
            } => self.upsert_call(call, changed_bits, &mut notices),
            EventDto::InstanceChanged { instance } => {
                self.instances.insert(instance.name.clone(), instance);
            }
        }
        notices
    }

    fn upsert_line(&mut self, line: LineDto, out: &mut Vec<Notice>) {
        let id = line.id;
        let present = line.status != "defunct";
        match self.lines.get_mut(&id) {
            Some(slot) => {
                let was_present = slot.present();
                slot.dto = line;
                if present && !was_present && slot.device.is_none() {
                    self.announce_line(id, out);
                } else if !present && was_present {
                    self.remove_line(id, false, out);
                }
            }
            None => {
                self.lines.insert(
                    id,
                    LineSlot {
                        dto: line,
                        device: None,
                        open: None,
                        reported_in_service: false,
                    },
                );
                if present {
                    self.announce_line(id, out);
                }
            }
        }
    }

    fn announce_line(&mut self, line: LineId, out: &mut Vec<Notice>) {
        if !self.enumerated {
            return;
        }
        self.next_temp_id += 1;
        self.temp_ids.insert(self.next_temp_id, line);
        out.push(Notice::LineCreate {
            temp_id: self.next_temp_id,
        });
    }

    /// A line the server no longer has: `LINE_REMOVE` for its device; TAPISRV never uses the
    /// device id again, so a line that comes back gets a new one.
    fn remove_line(&mut self, line: LineId, forget: bool, out: &mut Vec<Notice>) {
        let Some(slot) = self.lines.get_mut(&line) else {
            return;
        };
        slot.dto.status = "defunct".into();
        slot.open = None;
        if let Some(device) = slot.device.take() {
            out.push(Notice::LineRemove { device });
        }
        self.temp_ids.retain(|_, waiting| *waiting != line);
        if forget {
            self.lines.remove(&line);
        }
    }

    fn report_service(&mut self, out: &mut Vec<Notice>) {
        let connected = self.connected;
        for slot in self.lines.values_mut() {
            if slot.open.is_none() {
                continue;
            }
            let now = connected && slot.dto.status == "in_service";
            if now != slot.reported_in_service {
                slot.reported_in_service = now;
                let state = if now {
                    LINEDEVSTATE_INSERVICE
                } else {
                    LINEDEVSTATE_OUTOFSERVICE
                };
                out.push(Notice::LineDevState {
                    line: slot.dto.id,
                    state,
                });
            }
        }
    }

    /// A call as the server describes it now: announce, report its state when it changed,
    /// report changed information.
    fn upsert_call(&mut self, call: CallDto, info_changed: u32, out: &mut Vec<Notice>) {
        let id = call.id;
        let ended = call.state_bits == LINECALLSTATE_IDLE;
        if ended {
            self.calls.remove(&id);
        } else {
            self.calls.insert(id, call.clone());
        }
        let line_open = self
            .lines
            .get(&call.line)
            .is_some_and(|slot| slot.open.is_some());
        let handle = match self.by_tapir_call.get(&id) {
            Some(handle) => *handle,
            None if line_open && !ended => self.announce_call(&call, out),
            None => return,
        };
        let conference = call
            .conference
            .and_then(|parent| self.by_tapir_call.get(&parent).copied());
        let Some(slot) = self.slots.get_mut(&handle) else {
            return;
        };
        slot.dto = Some(call);
        if slot.pending {
            return;
        }
        let now = slot.state();
        if slot.reported != Some(now) {
            slot.reported = Some(now);
            out.push(Notice::CallState {
                line: slot.line,
                call: handle,
                state: now.0,
                mode: now.1,
                conference: conference.filter(|_| now.0 == LINECALLSTATE_CONFERENCED),
            });
        } else if info_changed != 0 && now.0 != LINECALLSTATE_IDLE {
            out.push(Notice::CallInfo {
                line: slot.line,
                call: handle,
                changed: info_changed,
            });
        }
    }

    /// `LINE_NEWCALL` for a call TAPI did not create; a consultation the TSP asked for takes
    /// over its placeholder instead.
    fn announce_call(&mut self, call: &CallDto, out: &mut Vec<Notice>) -> CallHandle {
        let handle = self.new_handle();
        self.slots.insert(
            handle,
            CallSlot {
                line: call.line,
                tapi_call: 0,
                tapir: Some(call.id),
                dto: None,
                app_specific: 0,
                pending: false,
                placeholder: None,
                reported: None,
            },
        );
        self.by_tapir_call.insert(call.id, handle);
        out.push(Notice::NewCall {
            line: call.line,
            call: handle,
        });
        handle
    }

    fn report_idle(&mut self, handle: CallHandle, out: &mut Vec<Notice>) {
        let Some(slot) = self.slots.get_mut(&handle) else {
            return;
        };
        if let Some(id) = slot.tapir {
            self.by_tapir_call.remove(&id);
        }
        if let Some(dto) = slot.dto.as_mut() {
            dto.state_bits = LINECALLSTATE_IDLE;
            dto.mode_bits = 0;
            dto.state = "idle".into();
            dto.feature_bits = 0;
        }
        if slot.pending || slot.reported == Some((LINECALLSTATE_IDLE, 0)) {
            return;
        }
        slot.reported = Some((LINECALLSTATE_IDLE, 0));
        out.push(Notice::CallState {
            line: slot.line,
            call: handle,
            state: LINECALLSTATE_IDLE,
            mode: 0,
            conference: None,
        });
    }

    /// Binds a dial tone or consultation placeholder to the call the server creates for it.
    pub fn bind_placeholder(&mut self, placeholder: CallHandle) {
        if let Some(slot) = self.slots.get_mut(&placeholder) {
            slot.pending = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapir_wire::{PartyDto, SequencedDto};
    use windows_sys::Win32::Devices::Tapi::{
        LINECALLSTATE_CONNECTED, LINECALLSTATE_OFFERING, LINECALLSTATE_RINGBACK,
    };

    fn line(id: u32, address: &str) -> LineDto {
        LineDto {
            id,
            instance: "sim".into(),
            address: address.into(),
            name: format!("Line {address}"),
            status: "in_service".into(),
            forwards: Vec::new(),
            do_not_disturb: false,
        }
    }

    fn call(id: u64, line: u32, state: &str, state_bits: u32) -> CallDto {
        CallDto {
            id,
            line,
            state: state.into(),
            mode: None,
            state_bits,
            mode_bits: 0,
            origin: "internal".into(),
            reason: "direct".into(),
            caller: PartyDto {
                number: Some("201".into()),
                name: None,
            },
            called: PartyDto::default(),
            connected: PartyDto::default(),
            redirecting: PartyDto::default(),
            redirection: PartyDto::default(),
            related: None,
            conference: None,
            features: Vec::new(),
            feature_bits: 0,
            created_at: 0,
            state_entered_at: 0,
            connected_at: None,
        }
    }

    fn snapshot(epoch: u64, lines: Vec<LineDto>, calls: Vec<CallDto>) -> SnapshotDto {
        SnapshotDto {
            epoch,
            seq: 10,
            instances: Vec::new(),
            lines,
            calls,
        }
    }

    const OPEN: OpenLine = OpenLine {
        tapi_line: 0x51,
        event_proc: 0x99,
    };

    /// Two lines enumerated as devices 0 and 1, line 1 open.
    fn ready(calls: Vec<CallDto>) -> (Devices, Vec<Notice>) {
        let mut devices = Devices::new();
        devices.apply_snapshot(snapshot(1, vec![line(1, "201"), line(2, "202")], calls));
        assert_eq!(devices.enumerate(), 2);
        devices.number_devices(0);
        let (opened, notices) = devices.open(0, OPEN).unwrap();
        assert_eq!(opened, 1);
        (devices, notices)
    }

    #[test]
    fn a_call_already_on_a_line_is_announced_when_the_line_opens() {
        let (_, notices) = ready(vec![call(7, 1, "connected", LINECALLSTATE_CONNECTED)]);
        assert_eq!(
            notices,
            vec![
                Notice::NewCall { line: 1, call: 1 },
                Notice::CallState {
                    line: 1,
                    call: 1,
                    state: LINECALLSTATE_CONNECTED,
                    mode: 0,
                    conference: None
                }
            ]
        );
    }

    #[test]
    fn a_made_call_sends_no_event_before_its_completion_and_no_new_call_after() {
        let (mut devices, _) = ready(Vec::new());
        let handle = devices.reserve_call(1, 0x77);
        let sent = devices
            .request_creating(
                5,
                1,
                handle,
                CommandDto::MakeCall {
                    line: 1,
                    to: "202".into(),
                },
            )
            .unwrap();
        assert!(devices.call(handle).is_err(), "not valid before completion");
        let done = devices.result(&sent.id, true, Some(9), None, None);
        assert_eq!(
            done,
            vec![Notice::Completion {
                request: 5,
                result: 0
            }]
        );
        let event = EventDto::CallNew {
            call: call(9, 1, "ringback", LINECALLSTATE_RINGBACK),
        };
        assert_eq!(
            devices.apply_event(11, event),
            vec![Notice::CallState {
                line: 1,
                call: handle,
                state: LINECALLSTATE_RINGBACK,
                mode: 0,
                conference: None
            }]
        );
        // The same state again is not reported twice.
        let again = EventDto::CallFeatures {
            call: call(9, 1, "ringback", LINECALLSTATE_RINGBACK),
        };
        assert_eq!(devices.apply_event(12, again), Vec::new());
    }

    #[test]
    fn a_refused_command_completes_with_the_servers_lineerr() {
        let (mut devices, notices) = ready(vec![call(7, 1, "offering", LINECALLSTATE_OFFERING)]);
        assert_eq!(notices.len(), 2);
        devices.bind_tapi_call(1, 0x66);
        let sent = devices
            .request(3, 1, Some(1), CommandDto::Hold { call: 7 })
            .unwrap();
        let error = ErrorDto {
            error: "invalid_call_state".into(),
            lineerr: Some(0x8000_001C),
            message: "cannot hold".into(),
        };
        assert_eq!(
            devices.result(&sent.id, false, None, None, Some(&error)),
            vec![Notice::Completion {
                request: 3,
                result: 0x8000_001C_u32 as i32
            }]
        );
        assert_eq!(
            devices.result(&sent.id, true, None, None, None),
            Vec::new(),
            "once"
        );
    }

    #[test]
    fn losing_the_server_fails_requests_in_flight_and_puts_lines_out_of_service() {
        let (mut devices, _) = ready(vec![call(7, 1, "offering", LINECALLSTATE_OFFERING)]);
        devices.bind_tapi_call(1, 0x66);
        let sent = devices
            .request(3, 1, Some(1), CommandDto::Answer { call: 7 })
            .unwrap();
        let lost = devices.connection_lost();
        assert_eq!(
            lost,
            vec![
                Notice::Completion {
                    request: 3,
                    result: line_err(LINEERR_OPERATIONFAILED)
                },
                Notice::LineDevState {
                    line: 1,
                    state: LINEDEVSTATE_OUTOFSERVICE
                }
            ]
        );
        assert_eq!(devices.result(&sent.id, true, None, None, None), Vec::new());
        assert_eq!(
            devices.request(4, 1, Some(1), CommandDto::Answer { call: 7 }),
            Err(line_err(LINEERR_OPERATIONFAILED)),
            "refused at once while the server is away"
        );
        // The server restarted: the call is gone, a new one rings.
        let back = devices.apply_snapshot(snapshot(
            2,
            vec![line(1, "201"), line(2, "202")],
            vec![call(1, 1, "offering", LINECALLSTATE_OFFERING)],
        ));
        assert_eq!(
            back,
            vec![
                Notice::CallState {
                    line: 1,
                    call: 1,
                    state: LINECALLSTATE_IDLE,
                    mode: 0,
                    conference: None
                },
                Notice::NewCall { line: 1, call: 2 },
                Notice::CallState {
                    line: 1,
                    call: 2,
                    state: LINECALLSTATE_OFFERING,
                    mode: 0,
                    conference: None
                },
                Notice::LineDevState {
                    line: 1,
                    state: LINEDEVSTATE_INSERVICE
                }
            ]
        );
    }

    #[test]
    fn lines_that_come_and_go_are_created_and_removed() {
        let (mut devices, _) = ready(Vec::new());
        let created = devices.apply_event(
            11,
            EventDto::LineCreated {
                line: line(3, "203"),
            },
        );
        assert_eq!(created, vec![Notice::LineCreate { temp_id: 1 }]);
        devices.create_device(1, 7).unwrap();
        assert_eq!(devices.line_of_device(7).map(|l| l.id), Some(3));
        assert!(
            devices.create_device(1, 8).is_err(),
            "a temporary id is used once"
        );
        let removed = devices.apply_event(
            12,
            EventDto::LineRemoved {
                line: 3,
                instance: "sim".into(),
            },
        );
        assert_eq!(removed, vec![Notice::LineRemove { device: 7 }]);
        assert!(devices.line_of_device(7).is_none());
        let sequenced: SequencedDto = SequencedDto {
            seq: 13,
            at: 0,
            event: EventDto::LineChanged {
                line: line(3, "203"),
            },
        };
        assert_eq!(
            devices.apply_event(sequenced.seq, sequenced.event),
            vec![Notice::LineCreate { temp_id: 2 }],
            "a line that comes back gets a new device"
        );
        assert_eq!(devices.resume_point(), Some((13, 1)));
    }

    /// `lineMakeCall` without a number, then `lineDial` while the server is unreachable: the
    /// dial is refused at once and the call stays in dial tone, to be dialled again.
    #[test]
    fn a_call_in_dial_tone_survives_a_dial_the_server_cannot_take() {
        let (mut devices, _) = ready(Vec::new());
        let (call, notices) = devices
            .placeholder(Placeholder::Dialtone { line: 1 }, 0x70)
            .unwrap();
        assert!(matches!(
            notices[..],
            [Notice::CallState {
                state: LINECALLSTATE_DIALTONE,
                ..
            }]
        ));
        devices.connection_lost();
        devices.bind_placeholder(call);
        let make = CommandDto::MakeCall {
            line: 1,
            to: "202".into(),
        };
        assert_eq!(
            devices.request_creating(9, 1, call, make).map(|_| ()),
            Err(line_err(LINEERR_OPERATIONFAILED))
        );
        let slot = devices.call(call).expect("the call is still there");
        assert_eq!(slot.state(), (LINECALLSTATE_DIALTONE, 0));
        assert!(!slot.pending, "and takes events and requests again");
    }

    #[test]
    fn closing_a_call_abandons_its_requests_and_a_placeholder_drops_locally() {
        let (mut devices, _) = ready(vec![call(7, 1, "connected", LINECALLSTATE_CONNECTED)]);
        devices.bind_tapi_call(1, 0x66);
        let (consult, notices) = devices
            .placeholder(Placeholder::Consultation { original: 1 }, 0x67)
            .unwrap();
        assert!(matches!(
            notices[0],
            Notice::CallState {
                state: LINECALLSTATE_DIALTONE,
                ..
            }
        ));
        assert_eq!(
            devices.drop_placeholder(consult).map(|n| n.len()),
            Some(1),
            "an undialled consultation goes idle without the server"
        );
        let sent = devices
            .request(8, 1, Some(1), CommandDto::Drop { call: 7 })
            .unwrap();
        assert_eq!(
            devices.close_call(1).unwrap(),
            vec![Notice::Completion {
                request: 8,
                result: line_err(LINEERR_OPERATIONFAILED)
            }]
        );
        assert_eq!(devices.result(&sent.id, true, None, None, None), Vec::new());
        assert_eq!(
            devices.close_call(1),
            Err(line_err(LINEERR_INVALCALLHANDLE))
        );
    }
}
