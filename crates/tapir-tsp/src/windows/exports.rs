//! The TSPI functions TAPISRV calls, by name. Each one checks its pointers, translates
//! handles, calls the provider instance and answers; none blocks on the network and none
//! lets a panic out.

#![allow(non_snake_case)] // The TSPI names are fixed by TAPISRV.

use std::ffi::c_void;
use std::mem::offset_of;
use std::sync::atomic::Ordering;

use windows_sys::Win32::Devices::Tapi::{
    LINEERR_INVALDEVICECLASS, LINEERR_INVALPARKMODE, LINEERR_INVALPOINTER, LINEERR_OPERATIONFAILED,
    LINEERR_OPERATIONUNAVAIL, LINEFORWARD, LINEFORWARDLIST, LINEPARKMODE_DIRECTED,
    LINEPARKMODE_NONDIRECTED, LINETRANSFERMODE_CONFERENCE, PHONEERR_NODEVICE, STRINGFORMAT_BINARY,
    VARSTRING,
};
use windows_sys::Win32::Foundation::{HINSTANCE, HWND};

use super::{
    by_call, by_line, call_handle, dialog, guard, instance_by_device, instance_for, line_handle,
    own_path, read_wide, settings, shut_down,
};
use crate::config::parse_configure_args;
use crate::devices::{CallHandle, LineErr, LineId, OpenLine, line_err};
use crate::engine::test_connection;
use crate::provider::{ForwardEntry, Provider, Publish, negotiate};
use crate::structs::{PlaceBuffer, VarWriter, caller_buffer};

type Handle = usize;

/// Writes `value` through an out-pointer TAPISRV gave.
///
/// # Safety
/// `out` is null or valid for a write of `T`.
unsafe fn put<T>(out: *mut T, value: T) -> Result<(), LineErr> {
    if out.is_null() {
        return Err(line_err(LINEERR_INVALPOINTER));
    }
    // SAFETY: checked non-null; TAPISRV's out-parameters are valid.
    unsafe { out.write_unaligned(value) };
    Ok(())
}

fn request_id(request: u32) -> i32 {
    request as i32
}

/// A structure about a device, filled into the caller's buffer.
fn fill_for_device(
    device: u32,
    structure: *mut u8,
    fill: impl FnOnce(&Provider, &mut [u8]) -> Result<(), LineErr>,
) -> i32 {
    guard(|| {
        let (_, provider) = instance_by_device(device)?;
        let buf = unsafe { caller_buffer(structure)? };
        fill(&provider, buf)?;
        Ok(0)
    })
}

/// An asynchronous request on one call: the request id, or the error at once.
fn on_call(call: Handle, act: impl FnOnce(&Provider, CallHandle) -> Result<u32, LineErr>) -> i32 {
    guard(|| {
        let (provider, _, call) = by_call(call)?;
        Ok(request_id(act(&provider, call)?))
    })
}

/// An asynchronous request that creates a call on a line: writes the new call's handle
/// through `driver_call` and returns the request id.
fn creating_on_line(
    request: u32,
    line: Handle,
    driver_call: *mut Handle,
    create: impl FnOnce(&Provider, LineId, Publish) -> Result<CallHandle, LineErr>,
) -> i32 {
    guard(|| {
        if driver_call.is_null() {
            return Err(line_err(LINEERR_INVALPOINTER));
        }
        let (provider, line_id) = by_line(line)?;
        let instance = super::split(line).map(|(i, _)| i).unwrap_or(0);
        create(&provider, line_id, &|handle| unsafe {
            publish(driver_call, instance, handle)
        })?;
        Ok(request_id(request))
    })
}

/// Writes a new call's handle to TAPISRV's out-parameter (checked non-null by the caller).
///
/// # Safety
/// `out` is a valid, non-null out-parameter of the running TSPI function.
unsafe fn publish(out: *mut Handle, instance: usize, call: CallHandle) {
    unsafe { out.write_unaligned(call_handle(instance, call)) };
}

// ---- Provider life cycle -------------------------------------------------------------------

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineNegotiateTSPIVersion(
    _device: u32,
    low: u32,
    high: u32,
    version: *mut u32,
) -> i32 {
    guard(|| {
        let agreed = negotiate(low, high)?;
        unsafe { put(version, agreed)? };
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_phoneNegotiateTSPIVersion(
    _device: u32,
    _low: u32,
    _high: u32,
    _version: *mut u32,
) -> i32 {
    // The TSP has no phone devices.
    PHONEERR_NODEVICE as i32
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_providerEnumDevices(
    permanent_id: u32,
    num_lines: *mut u32,
    num_phones: *mut u32,
    provider_handle: Handle,
    line_create: Handle,
    _phone_create: Handle,
) -> i32 {
    guard(|| {
        let (_, provider, callbacks) = instance_for(permanent_id)?;
        callbacks.line_create.store(line_create, Ordering::Release);
        callbacks
            .provider_handle
            .store(provider_handle, Ordering::Release);
        let lines = provider.enumerate();
        unsafe {
            put(num_lines, lines)?;
            put(num_phones, 0)?;
        }
        tracing::info!(provider = permanent_id, lines, "devices enumerated");
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_providerInit(
    _version: u32,
    permanent_id: u32,
    line_base: u32,
    _phone_base: u32,
    _num_lines: usize,
    _num_phones: usize,
    completion: Handle,
    options: *mut u32,
) -> i32 {
    guard(|| {
        let (_, provider, callbacks) = instance_for(permanent_id)?;
        callbacks.completion.store(completion, Ordering::Release);
        provider.init(line_base);
        if !options.is_null() {
            // Reentrant: TAPISRV may call from several threads.
            unsafe { put(options, 0)? };
        }
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_providerShutdown(_version: u32, permanent_id: u32) -> i32 {
    guard(|| {
        shut_down(permanent_id);
        tracing::info!(provider = permanent_id, "shut down");
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_providerCreateLineDevice(temp_id: usize, device: u32) -> i32 {
    guard(|| {
        // The temporary id came from one instance; ask each.
        let all: Vec<_> = super::instances()
            .iter()
            .flatten()
            .map(|i| i.provider.clone())
            .collect();
        all.iter()
            .find_map(|p| p.create_line_device(temp_id, device).ok())
            .map(|()| 0)
            .ok_or(line_err(
                windows_sys::Win32::Devices::Tapi::LINEERR_BADDEVICEID,
            ))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_providerUIIdentify(ui_dll_name: *mut u16) -> i32 {
    guard(|| {
        // The UI functions are in this DLL.
        let path = own_path().ok_or(line_err(LINEERR_OPERATIONUNAVAIL))?;
        if ui_dll_name.is_null() {
            return Err(line_err(LINEERR_INVALPOINTER));
        }
        let units: Vec<u16> = path.encode_utf16().chain([0]).take(260).collect();
        // SAFETY: TAPISRV passes a MAX_PATH buffer.
        unsafe { std::ptr::copy_nonoverlapping(units.as_ptr(), ui_dll_name, units.len()) };
        Ok(0)
    })
}

/// The old (TAPI 1.x) install functions: nothing to do, the settings come from
/// `TapirConfigure`.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_providerInstall(_owner: HWND, _permanent_id: u32) -> i32 {
    0
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_providerRemove(_owner: HWND, _permanent_id: u32) -> i32 {
    0
}

/// Called by TAPI inside `lineAddProvider` with the new provider's id: stores the settings
/// `TapirInstall` holds for it (see `install`).
#[unsafe(no_mangle)]
pub unsafe extern "system" fn TUISPI_providerInstall(
    _callback: Handle,
    _owner: HWND,
    permanent_id: u32,
) -> i32 {
    guard(|| {
        super::install::store_held_settings(permanent_id).map_err(|e| {
            tracing::error!(provider = permanent_id, "cannot store the settings: {e}");
            line_err(LINEERR_OPERATIONFAILED)
        })?;
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TUISPI_providerRemove(
    _callback: Handle,
    _owner: HWND,
    _permanent_id: u32,
) -> i32 {
    0
}

/// The configuration dialog, from the Phone and Modem control panel. A running instance
/// reads the new settings when the Telephony service restarts.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn TUISPI_providerConfig(
    _callback: Handle,
    owner: HWND,
    permanent_id: u32,
) -> i32 {
    guard(|| {
        dialog::show(owner, permanent_id);
        Ok(0)
    })
}

/// `rundll32 tapir.tsp,TapirConfigDialog --provider N`: the same dialog without the control
/// panel.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn TapirConfigDialogW(
    window: HWND,
    _instance: HINSTANCE,
    command_line: *const u16,
    _show: i32,
) {
    let line = unsafe { read_wide(command_line) }.unwrap_or_default();
    match parse_configure_args(&line) {
        Ok(args) => {
            let _ = std::panic::catch_unwind(|| dialog::show(window, args.provider));
        }
        Err(e) => eprintln!("TapirConfigDialog: {e}"),
    }
}

/// A line has no settings of its own; its provider's dialog serves.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn TUISPI_lineConfigDialog(
    _callback: Handle,
    _device: u32,
    _owner: HWND,
    _device_class: *const u16,
) -> i32 {
    line_err(LINEERR_OPERATIONUNAVAIL)
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TUISPI_lineConfigDialogEdit(
    _callback: Handle,
    _device: u32,
    _owner: HWND,
    _device_class: *const u16,
    _config_in: *const c_void,
    _size: u32,
    _config_out: *mut VARSTRING,
) -> i32 {
    line_err(LINEERR_OPERATIONUNAVAIL)
}

/// `rundll32 tapir.tsp,TapirConfigure --provider N --server wss://... --token ...`: stores a
/// provider instance's settings (secrets protected); see `config::parse_configure_args`.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn TapirConfigureW(
    _window: HWND,
    _instance: HINSTANCE,
    command_line: *const u16,
    _show: i32,
) {
    let outcome = std::panic::catch_unwind(|| {
        let line = unsafe { read_wide(command_line) }.unwrap_or_default();
        let args = parse_configure_args(&line)?;
        settings::save(args.provider, &args.settings)?;
        // Check what was stored reads back as a whole configuration.
        settings::config(args.provider).map(|_| ())
    });
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("TapirConfigure: {e}"),
        Err(_) => eprintln!("TapirConfigure: failed"),
    }
}

/// `rundll32 tapir.tsp,TapirTestConnection --provider N`: connects with the stored settings
/// as the provider would and prints what it found (or why it could not).
#[unsafe(no_mangle)]
pub unsafe extern "system" fn TapirTestConnectionW(
    _window: HWND,
    _instance: HINSTANCE,
    command_line: *const u16,
    _show: i32,
) {
    let outcome = std::panic::catch_unwind(|| {
        let line = unsafe { read_wide(command_line) }.unwrap_or_default();
        let provider = parse_configure_args(&line)
            .map_err(|e| e.to_string())?
            .provider;
        let config = settings::config(provider).map_err(|e| e.to_string())?;
        test_connection(&config)
    });
    match outcome {
        Ok(Ok(report)) => println!("TapirTestConnection: {report}"),
        Ok(Err(e)) => eprintln!("TapirTestConnection: {e}"),
        Err(_) => eprintln!("TapirTestConnection: failed"),
    }
}

// ---- Devices, addresses and status ---------------------------------------------------------

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineGetDevCaps(
    device: u32,
    version: u32,
    _ext_version: u32,
    caps: *mut u8,
) -> i32 {
    fill_for_device(device, caps, |provider, buf| {
        provider.dev_caps(device, version, buf)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineGetAddressCaps(
    device: u32,
    address: u32,
    _version: u32,
    _ext_version: u32,
    caps: *mut u8,
) -> i32 {
    fill_for_device(device, caps, |provider, buf| {
        provider.address_caps(device, address, buf)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineGetDevConfig(
    device: u32,
    config: *mut u8,
    _device_class: *const u16,
) -> i32 {
    guard(|| {
        instance_by_device(device)?;
        // No device configuration: an empty VARSTRING.
        let buf = unsafe { caller_buffer(config)? };
        let mut w = VarWriter::new(buf, std::mem::size_of::<VARSTRING>())?;
        w.set(offset_of!(VARSTRING, dwStringFormat), STRINGFORMAT_BINARY);
        w.finish();
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineSetDevConfig(
    device: u32,
    _config: *const c_void,
    _size: u32,
    _device_class: *const u16,
) -> i32 {
    guard(|| {
        instance_by_device(device)?;
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineGetIcon(
    device: u32,
    _device_class: *const u16,
    icon: *mut Handle,
) -> i32 {
    guard(|| {
        instance_by_device(device)?;
        // No icon of our own: TAPI shows its default.
        unsafe { put(icon, 0)? };
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineGetID(
    line: Handle,
    _address: u32,
    _call: Handle,
    _select: u32,
    device_id: *mut u8,
    device_class: *const u16,
    _target_process: Handle,
) -> i32 {
    guard(|| {
        let (provider, line) = by_line(line)?;
        let class = unsafe { read_wide(device_class) }.unwrap_or_default();
        if !class.eq_ignore_ascii_case("tapi/line") {
            return Err(line_err(LINEERR_INVALDEVICECLASS));
        }
        let device = provider.device_of_line(line)?;
        let buf = unsafe { caller_buffer(device_id)? };
        let mut w = VarWriter::new(buf, std::mem::size_of::<VARSTRING>())?;
        w.set(offset_of!(VARSTRING, dwStringFormat), STRINGFORMAT_BINARY);
        w.bytes(
            offset_of!(VARSTRING, dwStringSize),
            offset_of!(VARSTRING, dwStringOffset),
            &device.to_le_bytes(),
        );
        w.finish();
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineGetLineDevStatus(line: Handle, status: *mut u8) -> i32 {
    guard(|| {
        let (provider, line) = by_line(line)?;
        provider.line_status(line, unsafe { caller_buffer(status)? })?;
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineGetAddressStatus(
    line: Handle,
    address: u32,
    status: *mut u8,
) -> i32 {
    guard(|| {
        let (provider, line) = by_line(line)?;
        provider.address_status(line, address, unsafe { caller_buffer(status)? })?;
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineGetNumAddressIDs(line: Handle, count: *mut u32) -> i32 {
    guard(|| {
        by_line(line)?;
        unsafe { put(count, 1)? };
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineGetAddressID(
    line: Handle,
    address_id: *mut u32,
    _mode: u32,
    address: *const u16,
    _size: u32,
) -> i32 {
    guard(|| {
        let (provider, line) = by_line(line)?;
        let address = unsafe { read_wide(address) }.ok_or(line_err(LINEERR_INVALPOINTER))?;
        let id = provider.address_id(line, &address)?;
        unsafe { put(address_id, id)? };
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineGetCallAddressID(call: Handle, address_id: *mut u32) -> i32 {
    guard(|| {
        let (provider, _, call) = by_call(call)?;
        provider.line_of_call(call)?;
        unsafe { put(address_id, 0)? };
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineSetStatusMessages(
    line: Handle,
    _line_states: u32,
    _address_states: u32,
) -> i32 {
    // Every state change is reported; TAPISRV filters per application.
    guard(|| by_line(line).map(|_| 0))
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineSetDefaultMediaDetection(line: Handle, _modes: u32) -> i32 {
    guard(|| by_line(line).map(|_| 0))
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineConditionalMediaDetection(
    line: Handle,
    _modes: u32,
    _call_params: *const c_void,
) -> i32 {
    guard(|| by_line(line).map(|_| 0))
}

// ---- Open and close ------------------------------------------------------------------------

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineOpen(
    device: u32,
    tapi_line: Handle,
    driver_line: *mut Handle,
    _version: u32,
    event_proc: Handle,
) -> i32 {
    guard(|| {
        if event_proc == 0 || driver_line.is_null() {
            return Err(line_err(LINEERR_INVALPOINTER));
        }
        let (instance, provider) = instance_by_device(device)?;
        let open = OpenLine {
            tapi_line,
            event_proc,
        };
        // The handle is written before the line opens: the calls already on it are
        // announced from the connection thread, possibly before this returns.
        let line = provider.line_of_device(device)?;
        unsafe { put(driver_line, line_handle(instance, line))? };
        provider.open(device, open)?;
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineClose(line: Handle) -> i32 {
    guard(|| {
        let (provider, line) = by_line(line)?;
        provider.close(line)?;
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineCloseCall(call: Handle) -> i32 {
    guard(|| {
        let (provider, _, call) = by_call(call)?;
        provider.close_call(call)?;
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineGetCallInfo(call: Handle, info: *mut u8) -> i32 {
    guard(|| {
        let (provider, _, call) = by_call(call)?;
        provider.call_info(call, unsafe { caller_buffer(info)? })?;
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineGetCallStatus(call: Handle, status: *mut u8) -> i32 {
    guard(|| {
        let (provider, _, call) = by_call(call)?;
        provider.call_status(call, unsafe { caller_buffer(status)? })?;
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineSetAppSpecific(call: Handle, value: u32) -> i32 {
    guard(|| {
        let (provider, _, call) = by_call(call)?;
        provider.set_app_specific(call, value)?;
        Ok(0)
    })
}

// ---- Call control (asynchronous) -----------------------------------------------------------

/// A destination address from TAPISRV; a missing one is `LINEERR_INVALPOINTER`.
fn destination(text: *const u16) -> Result<String, LineErr> {
    unsafe { read_wide(text) }.ok_or(line_err(LINEERR_INVALPOINTER))
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineMakeCall(
    request: u32,
    line: Handle,
    tapi_call: Handle,
    driver_call: *mut Handle,
    destination: *const u16,
    _country: u32,
    _call_params: *const c_void,
) -> i32 {
    let to = unsafe { read_wide(destination) };
    creating_on_line(request, line, driver_call, |provider, line, published| {
        provider.make_call(request, line, tapi_call, to, published)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineDial(
    request: u32,
    call: Handle,
    to: *const u16,
    _country: u32,
) -> i32 {
    on_call(call, |provider, call| {
        provider.dial(request, call, destination(to)?)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineAnswer(
    request: u32,
    call: Handle,
    _user_info: *const u8,
    _size: u32,
) -> i32 {
    on_call(call, |provider, call| provider.answer(request, call))
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineAccept(
    request: u32,
    call: Handle,
    _user_info: *const u8,
    _size: u32,
) -> i32 {
    on_call(call, |provider, call| provider.accept(request, call))
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineDrop(
    request: u32,
    call: Handle,
    _user_info: *const u8,
    _size: u32,
) -> i32 {
    on_call(call, |provider, call| provider.drop_call(request, call))
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineHold(request: u32, call: Handle) -> i32 {
    on_call(call, |provider, call| provider.hold(request, call))
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineUnhold(request: u32, call: Handle) -> i32 {
    on_call(call, |provider, call| provider.unhold(request, call))
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineSwapHold(request: u32, active: Handle, held: Handle) -> i32 {
    guard(|| {
        let (provider, _, active) = by_call(active)?;
        let (_, _, held) = by_call(held)?;
        Ok(request_id(provider.swap_hold(request, active, held)?))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineBlindTransfer(
    request: u32,
    call: Handle,
    to: *const u16,
    _country: u32,
) -> i32 {
    on_call(call, |provider, call| {
        provider.blind_transfer(request, call, destination(to)?)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineRedirect(
    request: u32,
    call: Handle,
    to: *const u16,
    _country: u32,
) -> i32 {
    on_call(call, |provider, call| {
        provider.redirect(request, call, destination(to)?)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineSetupTransfer(
    request: u32,
    call: Handle,
    tapi_consult: Handle,
    driver_consult: *mut Handle,
    _call_params: *const c_void,
) -> i32 {
    guard(|| {
        if driver_consult.is_null() {
            return Err(line_err(LINEERR_INVALPOINTER));
        }
        let (provider, instance, call) = by_call(call)?;
        provider.setup_transfer(request, call, tapi_consult, &|consult| unsafe {
            publish(driver_consult, instance, consult)
        })?;
        Ok(request_id(request))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineCompleteTransfer(
    request: u32,
    call: Handle,
    consultation: Handle,
    tapi_conference: Handle,
    driver_conference: *mut Handle,
    mode: u32,
) -> i32 {
    guard(|| {
        let (provider, instance, call) = by_call(call)?;
        let (_, _, consultation) = by_call(consultation)?;
        if mode == LINETRANSFERMODE_CONFERENCE && driver_conference.is_null() {
            return Err(line_err(LINEERR_INVALPOINTER));
        }
        provider.complete_transfer(
            request,
            call,
            consultation,
            tapi_conference,
            mode,
            &|conference| unsafe { publish(driver_conference, instance, conference) },
        )?;
        Ok(request_id(request))
    })
}

/// Only from an existing call (a conference of it and one consultation, as tapir's PBXs
/// join three parties).
#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineSetupConference(
    request: u32,
    call: Handle,
    _line: Handle,
    tapi_conference: Handle,
    driver_conference: *mut Handle,
    tapi_consult: Handle,
    driver_consult: *mut Handle,
    _parties: u32,
    _call_params: *const c_void,
) -> i32 {
    guard(|| {
        if driver_conference.is_null() || driver_consult.is_null() {
            return Err(line_err(LINEERR_INVALPOINTER));
        }
        if call == 0 {
            return Err(line_err(LINEERR_OPERATIONUNAVAIL));
        }
        let (provider, instance, call) = by_call(call)?;
        provider.setup_conference(
            request,
            call,
            tapi_conference,
            tapi_consult,
            &|conference, consultation| unsafe {
                publish(driver_conference, instance, conference);
                publish(driver_consult, instance, consultation);
            },
        )?;
        Ok(request_id(request))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineAddToConference(
    request: u32,
    conference: Handle,
    consultation: Handle,
) -> i32 {
    guard(|| {
        let (provider, _, conference) = by_call(conference)?;
        let (_, _, consultation) = by_call(consultation)?;
        Ok(request_id(provider.add_to_conference(
            request,
            conference,
            consultation,
        )?))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_linePickup(
    request: u32,
    line: Handle,
    _address: u32,
    tapi_call: Handle,
    driver_call: *mut Handle,
    from: *const u16,
    _group: *const u16,
) -> i32 {
    let from = unsafe { read_wide(from) };
    creating_on_line(request, line, driver_call, |provider, line, published| {
        provider.pickup(request, line, tapi_call, from, published)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_linePark(
    request: u32,
    call: Handle,
    mode: u32,
    directed_to: *const u16,
    non_directed: *mut VARSTRING,
) -> i32 {
    guard(|| {
        let (provider, _, call) = by_call(call)?;
        let requested = match mode {
            LINEPARKMODE_DIRECTED => provider.park(request, call, destination(directed_to)?),
            LINEPARKMODE_NONDIRECTED => {
                // SAFETY: TAPISRV's VARSTRING, which it keeps until the request completes.
                let place = unsafe { PlaceBuffer::new(non_directed.cast())? };
                provider.park_nondirected(request, call, place)
            }
            _ => Err(line_err(LINEERR_INVALPARKMODE)),
        };
        Ok(request_id(requested?))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineUnpark(
    request: u32,
    line: Handle,
    _address: u32,
    tapi_call: Handle,
    driver_call: *mut Handle,
    from: *const u16,
) -> i32 {
    creating_on_line(request, line, driver_call, |provider, line, published| {
        provider.unpark(request, line, tapi_call, destination(from)?, published)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineGenerateDigits(
    call: Handle,
    end_to_end: u32,
    _mode: u32,
    digits: *const u16,
    _duration: u32,
) -> i32 {
    guard(|| {
        let (provider, _, call) = by_call(call)?;
        provider.generate_digits(call, end_to_end, destination(digits)?)?;
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "system" fn TSPI_lineForward(
    request: u32,
    line: Handle,
    _all_addresses: i32,
    _address: u32,
    forward_list: *const u8,
    _rings: u32,
    _tapi_consult: Handle,
    driver_consult: *mut Handle,
    _call_params: *const c_void,
) -> i32 {
    guard(|| {
        let (provider, line) = by_line(line)?;
        let entries = unsafe { forward_entries(forward_list)? };
        // Forwarding sets up no consultation call.
        if !driver_consult.is_null() {
            unsafe { put(driver_consult, 0)? };
        }
        Ok(request_id(provider.forward(request, line, entries)?))
    })
}

/// The entries of a `LINEFORWARDLIST`, every offset checked against its `dwTotalSize`.
///
/// # Safety
/// `list` is null or points to a `LINEFORWARDLIST` of `dwTotalSize` bytes.
unsafe fn forward_entries(list: *const u8) -> Result<Option<Vec<ForwardEntry>>, LineErr> {
    if list.is_null() {
        return Ok(None);
    }
    let bytes = unsafe { caller_buffer(list.cast_mut())? };
    let read = |offset: usize| -> Result<u32, LineErr> {
        bytes
            .get(offset..offset + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(line_err(
                windows_sys::Win32::Devices::Tapi::LINEERR_INVALPARAM,
            ))
    };
    let count = read(offset_of!(LINEFORWARDLIST, dwNumEntries))? as usize;
    let first = offset_of!(LINEFORWARDLIST, ForwardList);
    let size = std::mem::size_of::<LINEFORWARD>();
    let mut entries = Vec::new();
    for i in 0..count.min(16) {
        let at = first + i * size;
        let mode = read(at + offset_of!(LINEFORWARD, dwForwardMode))?;
        let length = read(at + offset_of!(LINEFORWARD, dwDestAddressSize))? as usize;
        let offset = read(at + offset_of!(LINEFORWARD, dwDestAddressOffset))? as usize;
        let text = bytes.get(offset..offset + length).ok_or(line_err(
            windows_sys::Win32::Devices::Tapi::LINEERR_INVALPARAM,
        ))?;
        let units: Vec<u16> = text
            .chunks_exact(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]))
            .take_while(|u| *u != 0)
            .collect();
        entries.push(ForwardEntry {
            mode,
            destination: String::from_utf16_lossy(&units),
        });
    }
    Ok(Some(entries))
}
