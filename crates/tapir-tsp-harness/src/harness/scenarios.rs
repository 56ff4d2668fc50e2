//! The scenarios, in the order TAPISRV and an application would drive a provider.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::mem::size_of;
use std::time::Duration;

use windows_sys::Win32::Devices::Tapi::{
    HDRVCALL, HDRVLINE, INITIALIZE_NEGOTIATION, LINE_CALLSTATE, LINE_LINEDEVSTATE, LINEADDRESSCAPS,
    LINECALLFEATURE_ANSWER, LINECALLFEATURE_DROP, LINECALLFEATURE_HOLD, LINECALLSTATE_CONNECTED,
    LINECALLSTATE_DIALING, LINECALLSTATE_DIALTONE, LINECALLSTATE_IDLE, LINECALLSTATE_OFFERING,
    LINECALLSTATE_PROCEEDING, LINECALLSTATE_RINGBACK, LINEDEVCAPS, LINEDEVSTATE_INSERVICE,
    LINEDEVSTATE_OUTOFSERVICE, LINEDEVSTATUSFLAGS_INSERVICE, LINEERR_STRUCTURETOOSMALL,
    LINEFEATURE_MAKECALL, LINEMEDIAMODE_INTERACTIVEVOICE, LINEPARKMODE_NONDIRECTED,
    STRINGFORMAT_UNICODE, VARSTRING,
};

use super::journal::{self, Callback, PROVIDER_HANDLE};
use super::peer;
use super::report::Report;
use super::tapi::*;
use super::tsp::{Tsp, wide};
use super::var_struct::VarStruct;
use super::{ExpectedLine, Options};

/// What the harness learnt about one line device.
struct Device {
    id: u32,
    permanent_id: u32,
    name: String,
    address: String,
}

/// An open line: TAPISRV's handle for it and the provider's.
#[derive(Clone, Copy)]
struct OpenLine {
    device: u32,
    tapi: usize,
    driver: HDRVLINE,
}

/// A call both sides know: TAPISRV's handle (what events carry) and the provider's.
#[derive(Clone, Copy, Debug)]
struct Call {
    tapi: usize,
    driver: HDRVCALL,
}

struct Session<'a> {
    tsp: Tsp,
    options: &'a Options,
    report: &'a mut Report,
    devices: Vec<Device>,
    open: BTreeMap<String, OpenLine>,
    next_request: u32,
}

/// The extensions the call scenarios use (the simulated PBX's first three).
const CALLER: &str = "201";
const CALLED: &str = "202";
const THIRD: &str = "203";

pub fn run_all(tsp: Tsp, options: &Options, report: &mut Report) {
    let mut session = Session {
        tsp,
        options,
        report,
        devices: Vec::new(),
        open: BTreeMap::new(),
        next_request: 1,
    };
    let started = session.start_provider().and_then(|()| session.open_lines());
    if let Err(why) = started {
        session
            .report
            .check("provider started and lines open", Err(why));
    } else {
        session.calls_between_lines();
        session.dial_tone_and_park();
        if session.options.no_peer {
            println!("SKIP outside call and restart (--no-peer)");
        } else {
            session.outside_call();
            session.server_restart();
        }
    }
    session.every_request_completed_once();
    session.shut_down();
}

impl Session<'_> {
    fn request_id(&mut self) -> u32 {
        let id = self.next_request;
        self.next_request += 1;
        id
    }

    fn check(&mut self, name: &str, outcome: Result<(), String>) {
        self.report.check(name, outcome);
    }

    // ---- 1. configuration, negotiation, enumeration, capabilities -------------------------

    fn start_provider(&mut self) -> Result<(), String> {
        self.configure();
        self.negotiate_overall()?;
        let lines = self.enumerate()?;
        self.init(lines)?;
        self.inspect_devices(lines);
        self.check_expected_lines();
        self.check_sizing();
        Ok(())
    }

    fn configure(&mut self) {
        let command_line = self.options.configure_command_line();
        let printable = command_line.replace(&self.options.token, "<token>");
        eprintln!("TapirConfigureW({printable})");
        let wide_line = wide(&command_line);
        // SAFETY: rundll32's contract: no window, the DLL's module, a NUL-terminated line.
        unsafe {
            (self.tsp.configure)(
                std::ptr::null_mut(),
                self.tsp.module(),
                wide_line.as_ptr(),
                0,
            )
        };
    }

    fn negotiate_overall(&mut self) -> Result<(), String> {
        let mut version = 0;
        // SAFETY: valid out pointer.
        let result = unsafe {
            (self.tsp.negotiate)(
                INITIALIZE_NEGOTIATION,
                TSPI_VERSION_LOW,
                TSPI_VERSION,
                &mut version,
            )
        };
        let outcome = if result == 0 && version == TSPI_VERSION {
            Ok(())
        } else {
            Err(format!("returned {result:#x} with version {version:#x}"))
        };
        self.check(
            "negotiate TSPI 2.2 (INITIALIZE_NEGOTIATION)",
            outcome.clone(),
        );
        outcome
    }

    fn enumerate(&mut self) -> Result<u32, String> {
        let (mut lines, mut phones) = (0u32, 0u32);
        // SAFETY: valid out pointers; the callbacks live as long as the process.
        let result = unsafe {
            (self.tsp.enum_devices)(
                self.options.provider,
                &mut lines,
                &mut phones,
                PROVIDER_HANDLE,
                Some(journal::line_create_proc),
                Some(journal::phone_create_proc),
            )
        };
        eprintln!("TSPI_providerEnumDevices = {result:#x}: {lines} lines, {phones} phones");
        if result != 0 {
            let why = format!("TSPI_providerEnumDevices = {result:#x}");
            self.check("enumerate devices", Err(why.clone()));
            return Err(why);
        }
        let expected = self.options.expected_lines.len() as u32;
        self.report.expect(
            "enumerate: as many line devices as tapir lists lines",
            expected == 0 || lines == expected,
            || format!("{lines} line devices, tapir lists {expected} lines"),
        );
        self.report
            .expect("enumerate: no phone devices", phones == 0, || {
                format!("{phones} phones")
            });
        if lines == 0 {
            return Err("no line devices".into());
        }
        Ok(lines)
    }

    fn init(&mut self, lines: u32) -> Result<(), String> {
        let mut options = 0u32;
        // SAFETY: valid out pointer; the completion callback lives as long as the process.
        let result = unsafe {
            (self.tsp.init)(
                TSPI_VERSION,
                self.options.provider,
                0,
                0,
                lines as usize,
                0,
                Some(journal::completion_proc),
                &mut options,
            )
        };
        let outcome = if result == 0 {
            Ok(())
        } else {
            Err(format!("TSPI_providerInit = {result:#x}"))
        };
        self.check("TSPI_providerInit", outcome.clone());
        self.create_announced_lines(lines);
        outcome
    }

    /// Lines announced with LINE_CREATE so far get device ids after the enumerated ones, as
    /// TAPISRV does with TSPI_providerCreateLineDevice (not expected with tapir's sim).
    fn create_announced_lines(&mut self, enumerated: u32) {
        let creates: Vec<usize> = journal::since(0)
            .into_iter()
            .filter_map(|(_, callback)| match callback {
                Callback::LineCreate { temp_id, .. } => Some(temp_id),
                _ => None,
            })
            .collect();
        for (index, temp_id) in creates.into_iter().enumerate() {
            let device = enumerated + index as u32;
            let Some(create) = self.tsp.create_line_device else {
                self.check(
                    "LINE_CREATE handled",
                    Err(
                        "LINE_CREATE sent but TSPI_providerCreateLineDevice is not exported".into(),
                    ),
                );
                return;
            };
            // SAFETY: plain values.
            let result = unsafe { create(temp_id, device) };
            eprintln!("TSPI_providerCreateLineDevice({temp_id}, {device}) = {result:#x}");
        }
    }

    fn inspect_devices(&mut self, lines: u32) {
        for device in 0..lines {
            match self.inspect_device(device) {
                Ok(found) => {
                    self.check(
                        &format!(
                            "device {device} ({} {:?}, permanent id {}): version, LINEDEVCAPS, LINEADDRESSCAPS",
                            found.address, found.name, found.permanent_id
                        ),
                        Ok(()),
                    );
                    self.devices.push(found);
                }
                Err(why) => self.check(&format!("device {device}"), Err(why)),
            }
        }
    }

    fn inspect_device(&self, device: u32) -> Result<Device, String> {
        let mut version = 0;
        // SAFETY: valid out pointer.
        let result =
            unsafe { (self.tsp.negotiate)(device, TSPI_VERSION_LOW, TSPI_VERSION, &mut version) };
        if result != 0 || version != TSPI_VERSION {
            return Err(format!(
                "TSPI_lineNegotiateTSPIVersion = {result:#x}, version {version:#x}"
            ));
        }
        let (permanent_id, name) = self.dev_caps_of(device)?;
        let address = self.address_of(device)?;
        Ok(Device {
            id: device,
            permanent_id,
            name,
            address,
        })
    }

    /// LINEDEVCAPS, fetched as TAPISRV does (the fixed size first, then what it needs).
    fn dev_caps_of(&self, device: u32) -> Result<(u32, String), String> {
        let (result, probe) = self.tsp.dev_caps(device, size_of::<LINEDEVCAPS>() as u32);
        if result != 0 {
            return Err(format!("TSPI_lineGetDevCaps(fixed size) = {result:#x}"));
        }
        let (result, caps) = self.tsp.dev_caps(device, probe.needed_size().max(4096));
        if result != 0 {
            return Err(format!("TSPI_lineGetDevCaps = {result:#x}"));
        }
        let fixed = caps.fixed();
        let name = caps.utf16("line name", fixed.dwLineNameOffset, fixed.dwLineNameSize)?;
        let provider_info = caps.utf16(
            "provider info",
            fixed.dwProviderInfoOffset,
            fixed.dwProviderInfoSize,
        )?;
        let string_format = fixed.dwStringFormat;
        let line_features = fixed.dwLineFeatures;
        let addresses = fixed.dwNumAddresses;
        let media_modes = fixed.dwMediaModes;
        let mut problems = Vec::new();
        if caps.used_size() > caps.needed_size() || caps.needed_size() != probe.needed_size() {
            problems.push(format!(
                "sizes: needed {} (first asked {}), used {}",
                caps.needed_size(),
                probe.needed_size(),
                caps.used_size()
            ));
        }
        if string_format != STRINGFORMAT_UNICODE {
            problems.push(format!("dwStringFormat {string_format}"));
        }
        if name.is_empty() {
            problems.push("no line name".into());
        }
        if !provider_info.to_lowercase().contains("tapir") {
            problems.push(format!(
                "provider info {provider_info:?} does not name tapir"
            ));
        }
        if line_features & LINEFEATURE_MAKECALL == 0 {
            problems.push(format!("dwLineFeatures {line_features:#x} lacks MAKECALL"));
        }
        if addresses != 1 {
            problems.push(format!("dwNumAddresses {addresses}"));
        }
        if media_modes & LINEMEDIAMODE_INTERACTIVEVOICE == 0 {
            problems.push(format!(
                "dwMediaModes {media_modes:#x} lacks INTERACTIVEVOICE"
            ));
        }
        if problems.is_empty() {
            Ok((fixed.dwPermanentLineID, name))
        } else {
            Err(format!("LINEDEVCAPS {name:?}: {}", problems.join("; ")))
        }
    }

    /// The address (extension) of a device's one address, and its call features.
    fn address_of(&self, device: u32) -> Result<String, String> {
        let (result, probe) = self
            .tsp
            .address_caps(device, size_of::<LINEADDRESSCAPS>() as u32);
        if result != 0 {
            return Err(format!("TSPI_lineGetAddressCaps(fixed size) = {result:#x}"));
        }
        let (result, caps) = self.tsp.address_caps(device, probe.needed_size().max(4096));
        if result != 0 {
            return Err(format!("TSPI_lineGetAddressCaps = {result:#x}"));
        }
        let fixed = caps.fixed();
        let address = caps.utf16("address", fixed.dwAddressOffset, fixed.dwAddressSize)?;
        let features = fixed.dwCallFeatures;
        let wanted = LINECALLFEATURE_ANSWER | LINECALLFEATURE_DROP | LINECALLFEATURE_HOLD;
        if address.is_empty() {
            return Err("LINEADDRESSCAPS without an address".into());
        }
        if features & wanted != wanted {
            return Err(format!(
                "LINEADDRESSCAPS {address}: dwCallFeatures {features:#x} lacks ANSWER, DROP or HOLD"
            ));
        }
        Ok(address)
    }

    fn check_expected_lines(&mut self) {
        let expected: &[ExpectedLine] = &self.options.expected_lines;
        if expected.is_empty() {
            return;
        }
        let mismatches: Vec<String> = expected
            .iter()
            .enumerate()
            .filter_map(|(index, want)| {
                let Some(got) = self.devices.iter().find(|d| d.id == index as u32) else {
                    return Some(format!("device {index}: not inspected"));
                };
                let same = got.permanent_id == want.permanent_id
                    && got.address == want.extension
                    && got.name == want.name;
                (!same).then(|| {
                    format!(
                        "device {index}: ({}, {}, {:?}), tapir: ({}, {}, {:?})",
                        got.permanent_id,
                        got.address,
                        got.name,
                        want.permanent_id,
                        want.extension,
                        want.name
                    )
                })
            })
            .collect();
        self.report.expect(
            "devices in tapir's line order with its permanent ids, extensions and names",
            mismatches.is_empty(),
            || mismatches.join("; "),
        );
    }

    /// dwTotalSize below the fixed size is refused; the fixed size succeeds and says how much
    /// more the strings need.
    fn check_sizing(&mut self) {
        let (result, _) = self.tsp.dev_caps(0, 16);
        self.report.expect(
            "LINEDEVCAPS below the fixed size: LINEERR_STRUCTURETOOSMALL",
            result as u32 == LINEERR_STRUCTURETOOSMALL,
            || format!("returned {result:#x}"),
        );
        let (result, caps) = self.tsp.dev_caps(0, size_of::<LINEDEVCAPS>() as u32);
        let (needed, used) = (caps.needed_size(), caps.used_size());
        self.report.expect(
            "LINEDEVCAPS of the fixed size: success, dwNeededSize > dwUsedSize",
            result == 0 && needed > used && used <= size_of::<LINEDEVCAPS>() as u32,
            || format!("returned {result:#x}, needed {needed}, used {used}"),
        );
        let (result, caps) = self
            .tsp
            .address_caps(0, size_of::<LINEADDRESSCAPS>() as u32);
        let (needed, used) = (caps.needed_size(), caps.used_size());
        self.report.expect(
            "LINEADDRESSCAPS of the fixed size: success, dwNeededSize > dwUsedSize",
            result == 0 && needed > used,
            || format!("returned {result:#x}, needed {needed}, used {used}"),
        );
    }

    // ---- 2. opening lines ------------------------------------------------------------------

    fn open_lines(&mut self) -> Result<(), String> {
        for extension in [CALLER, CALLED, THIRD] {
            let outcome = self.open_line(extension);
            self.check(&format!("open line {extension}"), outcome.clone());
            outcome?;
        }
        Ok(())
    }

    fn open_line(&mut self, extension: &str) -> Result<(), String> {
        let device = self
            .devices
            .iter()
            .find(|d| d.address == extension)
            .ok_or_else(|| format!("no device has address {extension}"))?
            .id;
        // TAPISRV's line handles: recognisable in the logs.
        let tapi = 0x1000 + device as usize;
        let driver = self.tsp.open_line(device, tapi)?;
        // SAFETY: an open line.
        let result = unsafe {
            (self.tsp.set_default_media_detection)(driver, LINEMEDIAMODE_INTERACTIVEVOICE)
        };
        if result != 0 {
            return Err(format!("TSPI_lineSetDefaultMediaDetection = {result:#x}"));
        }
        // SAFETY: an open line.
        let result = unsafe {
            (self.tsp.set_status_messages)(driver, LINEDEVSTATE_ALL, LINEADDRESSSTATE_ALL)
        };
        if result != 0 {
            return Err(format!("TSPI_lineSetStatusMessages = {result:#x}"));
        }
        self.open.insert(
            extension.to_owned(),
            OpenLine {
                device,
                tapi,
                driver,
            },
        );
        Ok(())
    }

    fn line(&self, extension: &str) -> OpenLine {
        *self
            .open
            .get(extension)
            .expect("scenarios use only the lines open_lines opened")
    }

    // ---- asynchronous requests and call events -------------------------------------------

    /// Waits for the one completion of `request`, which the provider has just accepted by
    /// returning it; returns the completion's journal position.
    fn completed(&self, what: &str, returned: i32, request: u32) -> Result<usize, String> {
        if returned != request as i32 {
            return Err(format!(
                "{what} returned {returned:#x} instead of its request id {request}"
            ));
        }
        let (at, callback) = journal::wait_for(
            0,
            &format!("completion of {what}"),
            |c| matches!(c, Callback::Completion { request: r, .. } if *r == request),
        )?;
        match callback {
            Callback::Completion { result: 0, .. } => Ok(at),
            Callback::Completion { result, .. } => {
                Err(format!("{what} completed with {result:#x}"))
            }
            _ => unreachable!("the wait accepts completions only"),
        }
    }

    /// `lineMakeCall` from `from` to `to`, or for dial tone when `to` is `None`.
    fn make_call(&mut self, from: &str, to: Option<&str>) -> Result<Call, String> {
        let line = self.line(from);
        let start = journal::mark();
        let request = self.request_id();
        let tapi = journal::new_call_handle();
        let mut driver: HDRVCALL = std::ptr::null_mut();
        let destination = to.map(wide);
        let destination = destination
            .as_ref()
            .map_or(std::ptr::null(), |d| d.as_ptr());
        // SAFETY: an open line, valid out pointer, a NUL-terminated destination or none, no
        // call params.
        let returned = unsafe {
            (self.tsp.make_call)(
                request,
                line.driver,
                tapi as *mut c_void,
                &mut driver,
                destination,
                0,
                std::ptr::null(),
            )
        };
        if returned == request as i32 && driver.is_null() {
            return Err("TSPI_lineMakeCall returned without writing its HDRVCALL".into());
        }
        let done = self.completed("TSPI_lineMakeCall", returned, request)?;
        let early: Vec<usize> = journal::since(start)
            .into_iter()
            .filter(|(at, c)| *at < done && c.concerns_call(tapi))
            .map(|(at, _)| at)
            .collect();
        if !early.is_empty() {
            return Err(format!(
                "events for the new call before its completion: journal entries {early:?}"
            ));
        }
        Ok(Call { tapi, driver })
    }

    /// Waits for `call` to reach `state` (seen from `since` on).
    fn reaches(&self, call: Call, state: u32, since: usize) -> Result<usize, String> {
        let what = format!(
            "LINE_CALLSTATE {} for htCall {:#x}",
            call_state_name(state),
            call.tapi
        );
        journal::wait_for(since, &what, |c| c.call_state_of(call.tapi) == Some(state))
            .map(|(at, _)| at)
    }

    /// Waits for the LINE_NEWCALL on `extension`'s line, then for its first LINE_CALLSTATE,
    /// which must be the next message about the call and OFFERING.
    fn offered_on(&self, extension: &str, since: usize) -> Result<Call, String> {
        let line = self.line(extension);
        let (_, new_call) =
            journal::wait_for(since, &format!("LINE_NEWCALL on {extension}"), |c| {
                c.is_line_message(line.tapi, LINE_NEWCALL)
            })?;
        let Callback::Line {
            param1, assigned, ..
        } = new_call
        else {
            unreachable!("the wait accepts line events only");
        };
        if param1 == 0 || assigned == 0 {
            return Err(format!(
                "LINE_NEWCALL without an HDRVCALL ({param1:#x}) or an LPHTAPICALL"
            ));
        }
        let call = Call {
            tapi: assigned,
            driver: param1 as HDRVCALL,
        };
        let (_, first) = journal::wait_for(
            since,
            "the first message about the new call",
            |c| matches!(c, Callback::Line { call: c, .. } if *c == call.tapi),
        )?;
        match first {
            Callback::Line {
                message,
                param1,
                param3,
                ..
            } if message == LINE_CALLSTATE as u32 => {
                if param1 as u32 != LINECALLSTATE_OFFERING {
                    return Err(format!(
                        "the new call's first state is {}, not OFFERING",
                        call_state_name(param1 as u32)
                    ));
                }
                if param3 as u32 & LINEMEDIAMODE_INTERACTIVEVOICE == 0 {
                    return Err(format!(
                        "OFFERING with media mode {param3:#x}, not INTERACTIVEVOICE"
                    ));
                }
                Ok(call)
            }
            other => Err(format!(
                "the first message after LINE_NEWCALL is not LINE_CALLSTATE: {other:?}"
            )),
        }
    }

    /// The caller id number and name in the provider's LINECALLINFO.
    fn caller_of(&self, call: Call) -> Result<(String, String), String> {
        let (result, info) = self.tsp.call_info(call.driver);
        if result != 0 {
            return Err(format!("TSPI_lineGetCallInfo = {result:#x}"));
        }
        let fixed = info.fixed();
        let number = info.utf16("caller id", fixed.dwCallerIDOffset, fixed.dwCallerIDSize)?;
        let name = info.utf16(
            "caller id name",
            fixed.dwCallerIDNameOffset,
            fixed.dwCallerIDNameSize,
        )?;
        Ok((number, name))
    }

    fn answer(&mut self, call: Call) -> Result<(), String> {
        let request = self.request_id();
        // SAFETY: a call the provider announced; no user-user information.
        let returned = unsafe { (self.tsp.answer)(request, call.driver, std::ptr::null(), 0) };
        self.completed("TSPI_lineAnswer", returned, request)
            .map(drop)
    }

    /// Drops `call`, waits until it and `others` are IDLE, and closes all of them as TAPISRV
    /// does.
    fn drop_and_close(&mut self, call: Call, others: &[Call]) -> Result<(), String> {
        let since = journal::mark();
        let request = self.request_id();
        // SAFETY: a live call; no user-user information.
        let returned = unsafe { (self.tsp.drop)(request, call.driver, std::ptr::null(), 0) };
        self.completed("TSPI_lineDrop", returned, request)?;
        for each in std::iter::once(&call).chain(others) {
            self.reaches(*each, LINECALLSTATE_IDLE, since)?;
        }
        for each in std::iter::once(&call).chain(others) {
            self.close_call(*each)?;
        }
        Ok(())
    }

    fn close_call(&self, call: Call) -> Result<(), String> {
        // SAFETY: a call the provider handed out and TAPISRV has not closed yet.
        let result = unsafe { (self.tsp.close_call)(call.driver) };
        if result == 0 {
            Ok(())
        } else {
            Err(format!(
                "TSPI_lineCloseCall({:?}) = {result:#x}",
                call.driver
            ))
        }
    }

    fn call_status(&self, call: Call) -> Result<(u32, u32), String> {
        let (result, status) = self.tsp.call_status(call.driver);
        if result != 0 {
            return Err(format!("TSPI_lineGetCallStatus = {result:#x}"));
        }
        let fixed = status.fixed();
        Ok((fixed.dwCallState, fixed.dwCallFeatures))
    }

    // ---- 3. a call from one line to another ------------------------------------------------

    fn calls_between_lines(&mut self) {
        let since = journal::mark();
        let outgoing = self.make_call(CALLER, Some(CALLED));
        self.check(
            &format!(
                "lineMakeCall {CALLER} -> {CALLED}: request id, then completion 0 before any event"
            ),
            outgoing.as_ref().map(drop).map_err(Clone::clone),
        );
        let Ok(outgoing) = outgoing else { return };
        let ringback = self.reaches(outgoing, LINECALLSTATE_RINGBACK, since);
        let early_states = self.states_of(outgoing, since);
        self.check(
            &format!("{CALLER}'s call goes through dialling states to RINGBACK"),
            ringback.map(drop).and_then(|()| {
                let dialling = LINECALLSTATE_DIALTONE
                    | LINECALLSTATE_DIALING
                    | LINECALLSTATE_PROCEEDING
                    | LINECALLSTATE_RINGBACK;
                match early_states.iter().find(|s| *s & dialling == 0) {
                    None => Ok(()),
                    Some(other) => Err(format!(
                        "unexpected state {} in {}",
                        call_state_name(*other),
                        names_of(&early_states)
                    )),
                }
            }),
        );
        let incoming = self.offered_on(CALLED, since);
        self.check(
            &format!("{CALLED}: LINE_NEWCALL, then LINE_CALLSTATE OFFERING (voice)"),
            incoming.as_ref().map(drop).map_err(Clone::clone),
        );
        let Ok(incoming) = incoming else { return };
        let caller = self.caller_of(incoming);
        self.check(
            &format!("{CALLED}'s LINECALLINFO shows caller id {CALLER}"),
            caller.and_then(|(number, _)| {
                if number == CALLER {
                    Ok(())
                } else {
                    Err(format!("caller id {number:?}"))
                }
            }),
        );
        let connected = self.answer_and_check(outgoing, incoming);
        self.check(
            &format!("lineAnswer on {CALLED}: completion 0, both CONNECTED, lineGetCallStatus CONNECTED with DROP"),
            connected,
        );
        let dropped = self.drop_and_close(outgoing, &[incoming]);
        self.check(
            &format!("lineDrop on {CALLER}: completion 0, both calls IDLE, lineCloseCall both"),
            dropped,
        );
    }

    fn answer_and_check(&mut self, outgoing: Call, incoming: Call) -> Result<(), String> {
        let since = journal::mark();
        self.answer(incoming)?;
        self.reaches(incoming, LINECALLSTATE_CONNECTED, since)?;
        self.reaches(outgoing, LINECALLSTATE_CONNECTED, since)?;
        let (state, features) = self.call_status(incoming)?;
        if state != LINECALLSTATE_CONNECTED || features & LINECALLFEATURE_DROP == 0 {
            return Err(format!(
                "lineGetCallStatus: state {}, features {features:#x}",
                call_state_name(state)
            ));
        }
        Ok(())
    }

    // ---- 3b. dial tone, lineDial and a non-directed park -----------------------------------

    fn dial_tone_and_park(&mut self) {
        let outcome = self.dial_tone_and_park_steps();
        self.check(
            &format!(
                "lineMakeCall {CALLER} without a number: DIALTONE; lineDial {CALLED}, answered; linePark non-directed: the place in the VARSTRING at its completion, {CALLER} IDLE"
            ),
            outcome,
        );
    }

    fn dial_tone_and_park_steps(&mut self) -> Result<(), String> {
        let since = journal::mark();
        let outgoing = self.make_call(CALLER, None)?;
        self.reaches(outgoing, LINECALLSTATE_DIALTONE, since)?;
        let request = self.request_id();
        let number = wide(CALLED);
        // SAFETY: a call the provider handed out, a NUL-terminated number.
        let returned = unsafe { (self.tsp.dial)(request, outgoing.driver, number.as_ptr(), 0) };
        self.completed("TSPI_lineDial", returned, request)?;
        self.reaches(outgoing, LINECALLSTATE_RINGBACK, since)?;
        let incoming = self.offered_on(CALLED, since)?;
        self.answer_and_check(outgoing, incoming)?;

        let since = journal::mark();
        let mut place = VarStruct::<VARSTRING>::with_total_size(256);
        let request = self.request_id();
        // SAFETY: a connected call; the VARSTRING lives until after the completion.
        let returned = unsafe {
            (self.tsp.park)(
                request,
                outgoing.driver,
                LINEPARKMODE_NONDIRECTED,
                std::ptr::null(),
                place.as_mut_ptr(),
            )
        };
        self.completed("TSPI_linePark", returned, request)?;
        let fixed = place.fixed();
        let format = fixed.dwStringFormat;
        let text = place.utf16("park place", fixed.dwStringOffset, fixed.dwStringSize)?;
        if format != STRINGFORMAT_UNICODE || text.is_empty() {
            return Err(format!("the VARSTRING holds format {format} and {text:?}"));
        }
        self.reaches(outgoing, LINECALLSTATE_IDLE, since)?;
        self.close_call(outgoing)?;
        // The parked party waits at the place; hanging it up ends the park.
        self.drop_and_close(incoming, &[])
    }

    /// The states `call` has been reported in since `since`, in order.
    fn states_of(&self, call: Call, since: usize) -> Vec<u32> {
        journal::since(since)
            .iter()
            .filter_map(|(_, c)| c.call_state_of(call.tapi))
            .collect()
    }

    // ---- 4. an outside call ----------------------------------------------------------------

    fn outside_call(&mut self) {
        let outcome = self.outside_call_steps();
        self.check(
            &format!("outside call to {CALLED}: LINE_NEWCALL, OFFERING with the caller's number, answer, drop"),
            outcome,
        );
    }

    fn outside_call_steps(&mut self) -> Result<(), String> {
        let since = journal::mark();
        let (from, name) = ("+4930123456", "Ada");
        let reported = peer::ask(&format!("SIM-INCOMING {CALLED} {from} {name}"))?;
        let expected_number = if reported.is_empty() { from } else { &reported };
        let call = self.offered_on(CALLED, since)?;
        let (number, caller_name) = self.caller_of(call)?;
        if number != expected_number {
            return Err(format!(
                "caller id {number:?}, tapir reports {expected_number:?}"
            ));
        }
        self.report.expect(
            "outside call: LINECALLINFO caller id name",
            caller_name == name,
            || format!("caller id name {caller_name:?}, want {name:?}"),
        );
        let answered = journal::mark();
        self.answer(call)?;
        self.reaches(call, LINECALLSTATE_CONNECTED, answered)?;
        self.drop_and_close(call, &[])
    }

    // ---- 5. tapir restarts under the provider ---------------------------------------------

    fn server_restart(&mut self) {
        let outcome = self.server_restart_steps();
        self.check(
            "tapir restart: lines out of service, back in service, the old call IDLE, no phantom call, a new call works",
            outcome,
        );
    }

    fn server_restart_steps(&mut self) -> Result<(), String> {
        let since = journal::mark();
        let outgoing = self.make_call(CALLER, Some(THIRD))?;
        let ringing = self.offered_on(THIRD, since)?;
        let before_stop = journal::mark();
        peer::ask("STOP-SERVER")?;
        let lines: Vec<OpenLine> = self.open.values().copied().collect();
        let mut out_of_service = before_stop;
        for line in &lines {
            let (at, _) = self.dev_state(line, LINEDEVSTATE_OUTOFSERVICE, before_stop)?;
            out_of_service = out_of_service.max(at);
        }
        peer::ask("START-SERVER")?;
        for line in &lines {
            self.dev_state(line, LINEDEVSTATE_INSERVICE, out_of_service)?;
        }
        for call in [outgoing, ringing] {
            self.reaches(call, LINECALLSTATE_IDLE, before_stop)?;
        }
        // Whatever the provider rebuilds from the new snapshot arrives right after it is in
        // service again; give it a moment before declaring there was none.
        std::thread::sleep(Duration::from_secs(2));
        self.no_new_calls_since(before_stop)?;
        for line in &lines {
            self.in_service_now(line)?;
        }
        for call in [outgoing, ringing] {
            let (state, _) = self.call_status(call)?;
            if state != LINECALLSTATE_IDLE {
                return Err(format!(
                    "the call from before the restart is {} in lineGetCallStatus",
                    call_state_name(state)
                ));
            }
            self.close_call(call)?;
        }
        let since = journal::mark();
        let again = self.make_call(CALLER, Some(CALLED))?;
        let offered = self.offered_on(CALLED, since)?;
        self.drop_and_close(again, &[offered])
    }

    fn dev_state(
        &self,
        line: &OpenLine,
        state: u32,
        since: usize,
    ) -> Result<(usize, Callback), String> {
        let what = format!(
            "LINE_LINEDEVSTATE {} on device {}",
            dev_state_names(state),
            line.device
        );
        journal::wait_for_within(since, Duration::from_secs(30), &what, |c| {
            matches!(*c, Callback::Line { line: l, message, param1, .. }
                if l == line.tapi && message == LINE_LINEDEVSTATE as u32 && param1 as u32 & state != 0)
        })
    }

    fn no_new_calls_since(&self, since: usize) -> Result<(), String> {
        let phantoms: Vec<String> = journal::since(since)
            .into_iter()
            .filter_map(|(at, c)| match c {
                Callback::Line {
                    line,
                    message: LINE_NEWCALL,
                    ..
                } => Some(format!("entry {at} on htLine {line:#x}")),
                _ => None,
            })
            .collect();
        if phantoms.is_empty() {
            Ok(())
        } else {
            Err(format!("phantom LINE_NEWCALL: {}", phantoms.join(", ")))
        }
    }

    fn in_service_now(&self, line: &OpenLine) -> Result<(), String> {
        let (result, status) = self.tsp.line_dev_status(line.driver);
        let flags = status.fixed().dwDevStatusFlags;
        if result == 0 && flags & LINEDEVSTATUSFLAGS_INSERVICE != 0 {
            Ok(())
        } else {
            Err(format!(
                "TSPI_lineGetLineDevStatus(device {}) = {result:#x}, dwDevStatusFlags {flags:#x}",
                line.device
            ))
        }
    }

    // ---- 6. bookkeeping and shutdown -------------------------------------------------------

    /// Every request the provider accepted completed exactly once, and nothing else did.
    fn every_request_completed_once(&mut self) {
        // Late duplicates would arrive shortly after the last completion.
        std::thread::sleep(Duration::from_millis(500));
        let mut counts: BTreeMap<u32, u32> = BTreeMap::new();
        for (_, callback) in journal::since(0) {
            if let Callback::Completion { request, .. } = callback {
                *counts.entry(request).or_default() += 1;
            }
        }
        let wrong: Vec<String> = counts
            .iter()
            .filter(|(request, count)| **count != 1 || **request >= self.next_request)
            .map(|(request, count)| format!("request {request} completed {count} times"))
            .collect();
        self.report.expect(
            "every asynchronous request completed exactly once",
            wrong.is_empty(),
            || wrong.join(", "),
        );
    }

    fn shut_down(self) {
        let Session {
            tsp,
            open,
            report,
            options,
            ..
        } = self;
        for (extension, line) in &open {
            // SAFETY: an open line, closed once.
            let result = unsafe { (tsp.close)(line.driver) };
            report.expect(&format!("lineClose {extension}"), result == 0, || {
                format!("returned {result:#x}")
            });
        }
        // SAFETY: every line is closed; nothing else of the provider is in use.
        let result = unsafe { (tsp.shutdown)(TSPI_VERSION, options.provider) };
        report.expect("TSPI_providerShutdown", result == 0, || {
            format!("returned {result:#x}")
        });
        let unloaded = tsp.unload();
        report.expect("FreeLibrary", unloaded, || "FreeLibrary failed".into());
    }
}

fn names_of(states: &[u32]) -> String {
    states
        .iter()
        .map(|s| call_state_name(*s))
        .collect::<Vec<_>>()
        .join(", ")
}
