//! What tspi.h has and windows-sys lacks: the TSPI prototypes, the tspi.h-only messages, and
//! names for the bits the harness prints.

use windows_sys::Win32::Devices::Tapi::{
    ASYNC_COMPLETION, HDRVCALL, HDRVLINE, HPROVIDER, HTAPICALL, HTAPILINE, LINEADDRESSCAPS,
    LINECALLINFO, LINECALLPARAMS, LINECALLSTATUS, LINEDEVCAPS, LINEDEVSTATUS, LINEEVENT,
    PHONEEVENT, VARSTRING,
};
use windows_sys::Win32::Foundation::{HINSTANCE, HWND};
use windows_sys::core::PCWSTR;

/// `LINE_NEWCALL` (tspi.h: `TSPI_MESSAGE_BASE`).
pub const LINE_NEWCALL: u32 = 500;
/// Every `LINEDEVSTATE_*` bit (tapi.h `LINEDEVSTATE_ALL` is not in windows-sys).
pub const LINEDEVSTATE_ALL: u32 = 0x01FF_FFFF;
/// Every `LINEADDRESSSTATE_*` bit.
pub const LINEADDRESSSTATE_ALL: u32 = 0x0000_01FF;

/// The TSPI version the harness asks for: TAPI 2.2, whose structure layouts windows-sys has.
pub const TSPI_VERSION: u32 = 0x0002_0002;
pub const TSPI_VERSION_LOW: u32 = 0x0002_0000;

pub type NegotiateTspiVersion =
    unsafe extern "system" fn(device: u32, low: u32, high: u32, version: *mut u32) -> i32;
pub type ProviderEnumDevices = unsafe extern "system" fn(
    provider_id: u32,
    lines: *mut u32,
    phones: *mut u32,
    provider: HPROVIDER,
    line_create: LINEEVENT,
    phone_create: PHONEEVENT,
) -> i32;
pub type ProviderInit = unsafe extern "system" fn(
    version: u32,
    provider_id: u32,
    line_base: u32,
    phone_base: u32,
    lines: usize,
    phones: usize,
    completion: ASYNC_COMPLETION,
    options: *mut u32,
) -> i32;
pub type ProviderShutdown = unsafe extern "system" fn(version: u32, provider_id: u32) -> i32;
pub type ProviderCreateLineDevice = unsafe extern "system" fn(temp_id: usize, device: u32) -> i32;
pub type LineGetDevCaps = unsafe extern "system" fn(
    device: u32,
    version: u32,
    extension_version: u32,
    caps: *mut LINEDEVCAPS,
) -> i32;
pub type LineGetAddressCaps = unsafe extern "system" fn(
    device: u32,
    address: u32,
    version: u32,
    extension_version: u32,
    caps: *mut LINEADDRESSCAPS,
) -> i32;
pub type LineOpen = unsafe extern "system" fn(
    device: u32,
    tapi_line: HTAPILINE,
    driver_line: *mut HDRVLINE,
    version: u32,
    events: LINEEVENT,
) -> i32;
pub type LineClose = unsafe extern "system" fn(line: HDRVLINE) -> i32;
pub type LineSetDefaultMediaDetection =
    unsafe extern "system" fn(line: HDRVLINE, media_modes: u32) -> i32;
pub type LineSetStatusMessages =
    unsafe extern "system" fn(line: HDRVLINE, line_states: u32, address_states: u32) -> i32;
pub type LineGetLineDevStatus =
    unsafe extern "system" fn(line: HDRVLINE, status: *mut LINEDEVSTATUS) -> i32;
pub type LineMakeCall = unsafe extern "system" fn(
    request: u32,
    line: HDRVLINE,
    tapi_call: HTAPICALL,
    driver_call: *mut HDRVCALL,
    destination: PCWSTR,
    country_code: u32,
    params: *const LINECALLPARAMS,
) -> i32;
/// `TSPI_lineAnswer` and `TSPI_lineDrop` (user-user information is unused).
pub type LineCallRequest = unsafe extern "system" fn(
    request: u32,
    call: HDRVCALL,
    user_user_info: *const u8,
    size: u32,
) -> i32;
pub type LineCloseCall = unsafe extern "system" fn(call: HDRVCALL) -> i32;
pub type LineDial = unsafe extern "system" fn(
    request: u32,
    call: HDRVCALL,
    destination: PCWSTR,
    country_code: u32,
) -> i32;
pub type LinePark = unsafe extern "system" fn(
    request: u32,
    call: HDRVCALL,
    mode: u32,
    directed_to: PCWSTR,
    non_directed: *mut VARSTRING,
) -> i32;
pub type LineGetCallInfo =
    unsafe extern "system" fn(call: HDRVCALL, info: *mut LINECALLINFO) -> i32;
pub type LineGetCallStatus =
    unsafe extern "system" fn(call: HDRVCALL, status: *mut LINECALLSTATUS) -> i32;
/// tapir's own export, in rundll32's shape, that stores a provider's settings.
pub type TapirConfigureW =
    unsafe extern "system" fn(window: HWND, instance: HINSTANCE, command_line: PCWSTR, show: i32);

const CALL_STATES: [(u32, &str); 16] = [
    (0x0001, "IDLE"),
    (0x0002, "OFFERING"),
    (0x0004, "ACCEPTED"),
    (0x0008, "DIALTONE"),
    (0x0010, "DIALING"),
    (0x0020, "RINGBACK"),
    (0x0040, "BUSY"),
    (0x0080, "SPECIALINFO"),
    (0x0100, "CONNECTED"),
    (0x0200, "PROCEEDING"),
    (0x0400, "ONHOLD"),
    (0x0800, "CONFERENCED"),
    (0x1000, "ONHOLDPENDCONF"),
    (0x2000, "ONHOLDPENDTRANSFER"),
    (0x4000, "DISCONNECTED"),
    (0x8000, "UNKNOWN"),
];

/// `LINECALLSTATE_*` by name, e.g. `OFFERING`; several bits (a provider bug) all named.
pub fn call_state_name(state: u32) -> String {
    names(state, &CALL_STATES)
}

const DEV_STATES: [(u32, &str); 9] = [
    (0x0001, "OTHER"),
    (0x0002, "RINGING"),
    (0x0004, "CONNECTED"),
    (0x0008, "DISCONNECTED"),
    (0x0040, "INSERVICE"),
    (0x0080, "OUTOFSERVICE"),
    (0x0100, "MAINTENANCE"),
    (0x0800, "NUMCALLS"),
    (0x0400, "CLOSE"),
];

/// `LINEDEVSTATE_*` bits by name.
pub fn dev_state_names(states: u32) -> String {
    names(states, &DEV_STATES)
}

fn names(bits: u32, table: &[(u32, &str)]) -> String {
    let mut named: Vec<String> = table
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| (*name).to_owned())
        .collect();
    let rest = table.iter().fold(bits, |left, (bit, _)| left & !bit);
    if rest != 0 || named.is_empty() {
        named.push(format!("{rest:#x}"));
    }
    named.join("|")
}
