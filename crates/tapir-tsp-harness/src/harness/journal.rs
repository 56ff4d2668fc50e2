//! The callbacks TAPISRV hands the provider, and the journal they write to.
//!
//! The provider calls back from its own thread(s); the scenarios run on the main thread and
//! wait on the journal for what they expect. Every callback is also printed to stderr, so a
//! failing run shows what the provider actually said.

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use windows_sys::Win32::Devices::Tapi::{
    HPROVIDER, HTAPICALL, HTAPILINE, HTAPIPHONE, LINE_ADDRESSSTATE, LINE_CALLINFO, LINE_CALLSTATE,
    LINE_CLOSE, LINE_CREATE, LINE_LINEDEVSTATE, LINE_REMOVE,
};

use super::tapi::{LINE_NEWCALL, call_state_name, dev_state_names};

/// How long one expected callback may take (a limit, not a measurement).
pub const PATIENCE: Duration = Duration::from_secs(15);

/// One callback from the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Callback {
    /// `ASYNC_COMPLETION(dwRequestID, lResult)`.
    Completion { request: u32, result: i32 },
    /// `LINEEVENT` on an open line. For `LINE_NEWCALL`, `assigned` is the `HTAPICALL` the
    /// harness wrote back through `dwParam2`.
    Line {
        line: usize,
        call: usize,
        message: u32,
        param1: usize,
        param2: usize,
        param3: usize,
        assigned: usize,
    },
    /// `LINE_CREATE` through the `lineCreateProc` of `TSPI_providerEnumDevices`.
    LineCreate { provider: usize, temp_id: usize },
    /// Anything through the `phoneCreateProc` (the provider has no phones).
    PhoneCreate { message: u32 },
}

impl Callback {
    pub fn is_line_message(&self, line: usize, message: u32) -> bool {
        matches!(*self, Callback::Line { line: l, message: m, .. } if l == line && m == message)
    }

    /// A `LINE_CALLSTATE` for `call` (a harness `HTAPICALL`): its state bit.
    pub fn call_state_of(&self, call: usize) -> Option<u32> {
        match *self {
            Callback::Line {
                call: c,
                message,
                param1,
                ..
            } if c == call && message == LINE_CALLSTATE as u32 => Some(param1 as u32),
            _ => None,
        }
    }

    /// Any `LINEEVENT` that names `call`, or the `LINE_NEWCALL` that introduced it.
    pub fn concerns_call(&self, call: usize) -> bool {
        match *self {
            Callback::Line {
                call: c, assigned, ..
            } => c == call || assigned == call,
            _ => false,
        }
    }
}

struct Journal {
    entries: Mutex<Vec<Callback>>,
    grown: Condvar,
}

static JOURNAL: Journal = Journal {
    entries: Mutex::new(Vec::new()),
    grown: Condvar::new(),
};

/// The next `HTAPICALL` the harness hands out; far from the line handles, for readable logs.
static NEXT_CALL_HANDLE: AtomicUsize = AtomicUsize::new(0x7000);

/// A fresh `HTAPICALL`, as TAPISRV would allocate for a new call.
pub fn new_call_handle() -> usize {
    NEXT_CALL_HANDLE.fetch_add(1, Ordering::SeqCst)
}

fn entries() -> MutexGuard<'static, Vec<Callback>> {
    // A panic elsewhere must not silence the callbacks: keep using the data.
    JOURNAL
        .entries
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn record(callback: Callback) {
    let mut all = entries();
    eprintln!("  [{:>4}] {}", all.len(), describe(&callback));
    all.push(callback);
    JOURNAL.grown.notify_all();
}

/// Where the journal ends now: later waits can start here.
pub fn mark() -> usize {
    entries().len()
}

/// Every callback from `since` on.
pub fn since(since: usize) -> Vec<(usize, Callback)> {
    entries().iter().copied().enumerate().skip(since).collect()
}

/// The first callback at or after `since` that `wanted` accepts, waiting up to [`PATIENCE`].
pub fn wait_for(
    since: usize,
    what: &str,
    wanted: impl Fn(&Callback) -> bool,
) -> Result<(usize, Callback), String> {
    wait_for_within(since, PATIENCE, what, wanted)
}

pub fn wait_for_within(
    since: usize,
    patience: Duration,
    what: &str,
    wanted: impl Fn(&Callback) -> bool,
) -> Result<(usize, Callback), String> {
    let deadline = Instant::now() + patience;
    let mut all = entries();
    loop {
        if let Some(found) = all.iter().enumerate().skip(since).find(|(_, c)| wanted(c)) {
            return Ok((found.0, *found.1));
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(format!("no {what} within {patience:?}"));
        }
        all = JOURNAL
            .grown
            .wait_timeout(all, deadline - now)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0;
    }
}

/// The `ASYNC_COMPLETION` TAPISRV gives the provider.
pub unsafe extern "system" fn completion_proc(request: u32, result: i32) {
    record(Callback::Completion { request, result });
}

/// The `LINEEVENT` TAPISRV gives `TSPI_lineOpen`.
pub unsafe extern "system" fn line_event_proc(
    line: HTAPILINE,
    call: HTAPICALL,
    message: u32,
    param1: usize,
    param2: usize,
    param3: usize,
) {
    let mut assigned = 0;
    if message == LINE_NEWCALL && param2 != 0 {
        // TAPISRV answers LINE_NEWCALL by writing its own handle for the call through dwParam2
        // before returning; every later event for the call carries it.
        assigned = new_call_handle();
        // SAFETY: the provider passes a pointer to an HTAPICALL it owns for this very purpose.
        unsafe { (param2 as *mut HTAPICALL).write(assigned as HTAPICALL) };
    }
    record(Callback::Line {
        line: line as usize,
        call: call as usize,
        message,
        param1,
        param2,
        param3,
        assigned,
    });
}

/// The `lineCreateProc` of `TSPI_providerEnumDevices` (a `LINEEVENT` used for `LINE_CREATE`).
pub unsafe extern "system" fn line_create_proc(
    _line: HTAPILINE,
    _call: HTAPICALL,
    message: u32,
    param1: usize,
    param2: usize,
    _param3: usize,
) {
    if message == LINE_CREATE as u32 {
        record(Callback::LineCreate {
            provider: param1,
            temp_id: param2,
        });
    } else {
        eprintln!("  unexpected message {message} through lineCreateProc");
    }
}

/// The `phoneCreateProc` of `TSPI_providerEnumDevices`; tapir's provider has no phones.
pub unsafe extern "system" fn phone_create_proc(
    _phone: HTAPIPHONE,
    message: u32,
    _param1: usize,
    _param2: usize,
    _param3: usize,
) {
    record(Callback::PhoneCreate { message });
}

/// The `hProvider` the harness passes to `TSPI_providerEnumDevices`; `LINE_CREATE` echoes it.
pub const PROVIDER_HANDLE: HPROVIDER = 0x7a91 as *mut c_void;

fn describe(callback: &Callback) -> String {
    match *callback {
        Callback::Completion { request, result } => {
            format!("ASYNC_COMPLETION request {request} result {result:#x}")
        }
        Callback::Line {
            line,
            call,
            message,
            param1,
            param2,
            param3,
            assigned,
        } => {
            let name = line_message_name(message);
            let detail = match message {
                m if m == LINE_CALLSTATE as u32 => format!(
                    "{} mode {param2:#x} media {param3:#x}",
                    call_state_name(param1 as u32)
                ),
                m if m == LINE_LINEDEVSTATE as u32 => dev_state_names(param1 as u32),
                LINE_NEWCALL => format!("hdCall {param1:#x} -> htCall {assigned:#x}"),
                _ => format!("p1 {param1:#x} p2 {param2:#x} p3 {param3:#x}"),
            };
            format!("{name} htLine {line:#x} htCall {call:#x} {detail}")
        }
        Callback::LineCreate { provider, temp_id } => {
            format!("LINE_CREATE hProvider {provider:#x} temp id {temp_id}")
        }
        Callback::PhoneCreate { message } => format!("phoneCreateProc message {message}"),
    }
}

fn line_message_name(message: u32) -> String {
    let name = match message as i32 {
        LINE_ADDRESSSTATE => "LINE_ADDRESSSTATE",
        LINE_CALLINFO => "LINE_CALLINFO",
        LINE_CALLSTATE => "LINE_CALLSTATE",
        LINE_CLOSE => "LINE_CLOSE",
        LINE_LINEDEVSTATE => "LINE_LINEDEVSTATE",
        LINE_CREATE => "LINE_CREATE",
        LINE_REMOVE => "LINE_REMOVE",
        _ if message == LINE_NEWCALL => "LINE_NEWCALL",
        _ => return format!("message {message}"),
    };
    name.to_owned()
}
