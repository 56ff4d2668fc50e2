//! The Windows side: provider instances by permanent provider id, TAPISRV's callbacks, and
//! the handles and strings that cross the ABI. The `extern "system"` functions are in
//! `exports`.
//!
//! Handles carry their instance: an `HDRVLINE` is `(instance + 1) << 32 | line id` and an
//! `HDRVCALL` `(instance + 1) << 32 | call handle`, so one DLL serves several instances
//! (several servers or tenants) at once.

mod dialog;
mod exports;
mod install;
mod settings;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use windows_sys::Win32::Devices::Tapi::{
    LINE_CREATE, LINE_REMOVE, LINEERR_INVALCALLHANDLE, LINEERR_INVALLINEHANDLE, LINEERR_NODEVICE,
    LINEERR_OPERATIONFAILED, TSPI_MESSAGE_BASE,
};

use crate::devices::{CallHandle, DeviceId, LineErr, LineId, OpenLine, line_err};
use crate::engine::Tapisrv;
use crate::provider::Provider;

/// `LINE_NEWCALL` (tspi.h only).
const LINE_NEWCALL: u32 = TSPI_MESSAGE_BASE;

type LineEventProc = unsafe extern "system" fn(usize, usize, u32, usize, usize, usize);
type CompletionProc = unsafe extern "system" fn(u32, i32);

/// TAPISRV's procedures for one provider instance.
struct Callbacks {
    instance: usize,
    completion: AtomicUsize,
    line_create: AtomicUsize,
    provider_handle: AtomicUsize,
}

impl Tapisrv for Callbacks {
    fn completion(&self, request: u32, result: LineErr) {
        let proc = self.completion.load(Ordering::Acquire);
        if proc != 0 {
            // SAFETY: the address of TAPISRV's ASYNC_COMPLETION from providerInit.
            let proc: CompletionProc = unsafe { std::mem::transmute(proc) };
            unsafe { proc(request, result) };
        }
    }

    fn line_event(&self, line: OpenLine, tapi_call: usize, message: u32, params: [usize; 3]) {
        // SAFETY: the address of TAPISRV's LINEEVENT from lineOpen.
        let proc: LineEventProc = unsafe { std::mem::transmute(line.event_proc) };
        unsafe {
            proc(
                line.tapi_line,
                tapi_call,
                message,
                params[0],
                params[1],
                params[2],
            )
        };
    }

    fn new_call(&self, line: OpenLine, call: CallHandle) -> usize {
        let mut tapi_call: usize = 0;
        let handle = call_handle(self.instance, call);
        // SAFETY: as above; TAPISRV writes its HTAPICALL through the pointer during the call.
        let proc: LineEventProc = unsafe { std::mem::transmute(line.event_proc) };
        unsafe {
            proc(
                line.tapi_line,
                0,
                LINE_NEWCALL,
                handle,
                (&mut tapi_call as *mut usize) as usize,
                0,
            )
        };
        tapi_call
    }

    fn line_create(&self, temp_id: usize) {
        let proc = self.line_create.load(Ordering::Acquire);
        if proc != 0 {
            // SAFETY: the address of the LINEEVENT given at providerEnumDevices.
            let proc: LineEventProc = unsafe { std::mem::transmute(proc) };
            let provider = self.provider_handle.load(Ordering::Acquire);
            unsafe { proc(0, 0, LINE_CREATE as u32, provider, temp_id, 0) };
        }
    }

    fn line_remove(&self, device: DeviceId) {
        let proc = self.line_create.load(Ordering::Acquire);
        if proc != 0 {
            // SAFETY: as above.
            let proc: LineEventProc = unsafe { std::mem::transmute(proc) };
            unsafe { proc(0, 0, LINE_REMOVE as u32, device as usize, 0, 0) };
        }
    }
}

/// One provider instance: a permanent provider id with its connection.
struct Instance {
    permanent_id: u32,
    provider: Arc<Provider>,
    callbacks: Arc<Callbacks>,
}

/// Every instance this DLL serves; an index stays valid (as `None`) after shutdown, so
/// handles of a gone instance are refused rather than misrouted.
static INSTANCES: Mutex<Vec<Option<Instance>>> = Mutex::new(Vec::new());

fn instances() -> MutexGuard<'static, Vec<Option<Instance>>> {
    INSTANCES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The instance for a permanent provider id, started (from its settings) when new.
fn instance_for(permanent_id: u32) -> Result<(usize, Arc<Provider>, Arc<Callbacks>), LineErr> {
    let mut all = instances();
    if let Some((index, Some(found))) = all
        .iter()
        .enumerate()
        .find(|(_, i)| i.as_ref().is_some_and(|i| i.permanent_id == permanent_id))
    {
        return Ok((index, found.provider.clone(), found.callbacks.clone()));
    }
    let config = settings::config(permanent_id).map_err(|e| {
        tracing::error!(provider = permanent_id, "cannot start: {e}");
        line_err(LINEERR_OPERATIONFAILED)
    })?;
    settings::start_logging(&config);
    tracing::info!(provider = permanent_id, server = %config.server, mode = config.mode.as_str(), "starting");
    let index = all.len();
    let callbacks = Arc::new(Callbacks {
        instance: index,
        completion: AtomicUsize::new(0),
        line_create: AtomicUsize::new(0),
        provider_handle: AtomicUsize::new(0),
    });
    let provider = Provider::start(config, callbacks.clone()).map_err(|e| {
        tracing::error!(provider = permanent_id, "cannot start: {e}");
        line_err(LINEERR_OPERATIONFAILED)
    })?;
    let provider = Arc::new(provider);
    all.push(Some(Instance {
        permanent_id,
        provider: provider.clone(),
        callbacks: callbacks.clone(),
    }));
    Ok((index, provider, callbacks))
}

fn instance_by_index(index: usize) -> Option<Arc<Provider>> {
    instances()
        .get(index)
        .and_then(|i| i.as_ref())
        .map(|i| i.provider.clone())
}

/// The instance owning a device id.
fn instance_by_device(device: DeviceId) -> Result<(usize, Arc<Provider>), LineErr> {
    let providers: Vec<(usize, Arc<Provider>)> = instances()
        .iter()
        .enumerate()
        .filter_map(|(index, i)| i.as_ref().map(|i| (index, i.provider.clone())))
        .collect();
    providers
        .into_iter()
        .find(|(_, provider)| provider.owns_device(device))
        .ok_or(line_err(LINEERR_NODEVICE))
}

fn shut_down(permanent_id: u32) {
    let gone = {
        let mut all = instances();
        all.iter_mut()
            .find(|i| i.as_ref().is_some_and(|i| i.permanent_id == permanent_id))
            .and_then(Option::take)
    };
    if let Some(instance) = gone {
        instance.provider.shutdown();
    }
}

fn tag(instance: usize) -> usize {
    (instance + 1) << 32
}

fn line_handle(instance: usize, line: LineId) -> usize {
    tag(instance) | line as usize
}

fn call_handle(instance: usize, call: CallHandle) -> usize {
    tag(instance) | (call & 0xFFFF_FFFF)
}

fn split(handle: usize) -> Option<(usize, usize)> {
    let instance = (handle >> 32).checked_sub(1)?;
    Some((instance, handle & 0xFFFF_FFFF))
}

/// The provider and line id behind an `HDRVLINE`.
fn by_line(handle: usize) -> Result<(Arc<Provider>, LineId), LineErr> {
    let (instance, line) = split(handle).ok_or(line_err(LINEERR_INVALLINEHANDLE))?;
    let provider = instance_by_index(instance).ok_or(line_err(LINEERR_INVALLINEHANDLE))?;
    Ok((provider, line as LineId))
}

/// The provider and call handle behind an `HDRVCALL`.
fn by_call(handle: usize) -> Result<(Arc<Provider>, usize, CallHandle), LineErr> {
    let (instance, call) = split(handle).ok_or(line_err(LINEERR_INVALCALLHANDLE))?;
    let provider = instance_by_index(instance).ok_or(line_err(LINEERR_INVALCALLHANDLE))?;
    Ok((provider, instance, call))
}

/// Runs an export's body: a panic becomes `LINEERR_OPERATIONFAILED` instead of crossing
/// into TAPISRV.
fn guard(body: impl FnOnce() -> Result<i32, LineErr>) -> i32 {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => value,
        Ok(Err(code)) => code,
        Err(_) => {
            tracing::error!("a TSPI function panicked; answered LINEERR_OPERATIONFAILED");
            line_err(LINEERR_OPERATIONFAILED)
        }
    }
}

/// The path of this DLL as loaded (TAPI needs it for the UI functions and to add the
/// provider).
fn own_path() -> Option<String> {
    use windows_sys::Win32::System::LibraryLoader::{
        GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS, GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
        GetModuleFileNameW, GetModuleHandleExW,
    };
    let mut module = std::ptr::null_mut();
    let anchor = own_path as *const () as *const u16;
    // SAFETY: an address inside this DLL; the reference count is left alone.
    let found = unsafe {
        GetModuleHandleExW(
            GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
            anchor,
            &mut module,
        )
    };
    if found == 0 {
        return None;
    }
    let mut buffer = [0u16; 260];
    // SAFETY: the buffer and its length.
    let length = unsafe { GetModuleFileNameW(module, buffer.as_mut_ptr(), buffer.len() as u32) };
    (length > 0).then(|| String::from_utf16_lossy(&buffer[..length as usize]))
}

/// `text` as a NUL-terminated UTF-16 string for Windows.
fn wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain([0]).collect()
}

/// A NUL-terminated UTF-16 string from TAPISRV (at most 32k characters).
///
/// # Safety
/// `text` is null or points to a NUL-terminated UTF-16 string.
unsafe fn read_wide(text: *const u16) -> Option<String> {
    if text.is_null() {
        return None;
    }
    let mut units = Vec::new();
    for i in 0..32_768 {
        // SAFETY: within the string, which ends at its NUL.
        let unit = unsafe { *text.add(i) };
        if unit == 0 {
            break;
        }
        units.push(unit);
    }
    Some(String::from_utf16_lossy(&units))
}
