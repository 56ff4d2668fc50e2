//! The provider DLL, loaded the way TAPISRV loads a .tsp: by path, its TSPI functions found
//! by name.

use std::ffi::c_void;

use windows_sys::Win32::Devices::Tapi::{
    HDRVCALL, HDRVLINE, LINEADDRESSCAPS, LINECALLINFO, LINECALLSTATUS, LINEDEVCAPS, LINEDEVSTATUS,
};
use windows_sys::Win32::Foundation::{FreeLibrary, GetLastError, HMODULE};
use windows_sys::Win32::System::LibraryLoader::{GetProcAddress, LoadLibraryW};

use super::journal;
use super::tapi::*;
use super::var_struct::VarStruct;

/// The loaded provider and the functions the harness calls.
pub struct Tsp {
    module: HMODULE,
    pub negotiate: NegotiateTspiVersion,
    pub enum_devices: ProviderEnumDevices,
    pub init: ProviderInit,
    pub shutdown: ProviderShutdown,
    pub create_line_device: Option<ProviderCreateLineDevice>,
    pub get_dev_caps: LineGetDevCaps,
    pub get_address_caps: LineGetAddressCaps,
    pub open: LineOpen,
    pub close: LineClose,
    pub set_default_media_detection: LineSetDefaultMediaDetection,
    pub set_status_messages: LineSetStatusMessages,
    pub get_line_dev_status: LineGetLineDevStatus,
    pub make_call: LineMakeCall,
    pub answer: LineCallRequest,
    pub drop: LineCallRequest,
    pub close_call: LineCloseCall,
    pub dial: LineDial,
    pub park: LinePark,
    pub get_call_info: LineGetCallInfo,
    pub get_call_status: LineGetCallStatus,
    pub configure: TapirConfigureW,
}

/// Finds `$name` in the DLL as `$ty`, or says which export is missing.
macro_rules! export {
    ($module:expr, $name:literal, $ty:ty) => {{
        let address = find($module, concat!($name, "\0"))
            .ok_or_else(|| format!("the DLL does not export {}", $name))?;
        // SAFETY: the export is declared with this prototype in tspi.h (or tapir's contract).
        unsafe { std::mem::transmute::<*const c_void, $ty>(address) }
    }};
}

fn find(module: HMODULE, name_with_nul: &str) -> Option<*const c_void> {
    // SAFETY: `module` is a loaded module and the name is NUL-terminated.
    let address = unsafe { GetProcAddress(module, name_with_nul.as_ptr()) }?;
    Some(address as *const c_void)
}

pub fn wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain(Some(0)).collect()
}

impl Tsp {
    /// Loads the DLL at `path` (a Windows path) and finds every function the harness needs.
    pub fn load(path: &str) -> Result<Tsp, String> {
        let wide_path = wide(path);
        // SAFETY: a NUL-terminated UTF-16 path.
        let module = unsafe { LoadLibraryW(wide_path.as_ptr()) };
        if module.is_null() {
            // SAFETY: no other call in between.
            let error = unsafe { GetLastError() };
            return Err(format!(
                "LoadLibraryW({path}) failed with error {error} (126: the DLL or one it imports is missing, e.g. bcryptprimitives.dll next to the harness)"
            ));
        }
        Tsp::bind(module).inspect_err(|_| {
            // SAFETY: loaded above, nothing of it in use yet.
            unsafe { FreeLibrary(module) };
        })
    }

    fn bind(module: HMODULE) -> Result<Tsp, String> {
        Ok(Tsp {
            module,
            negotiate: export!(
                module,
                "TSPI_lineNegotiateTSPIVersion",
                NegotiateTspiVersion
            ),
            enum_devices: export!(module, "TSPI_providerEnumDevices", ProviderEnumDevices),
            init: export!(module, "TSPI_providerInit", ProviderInit),
            shutdown: export!(module, "TSPI_providerShutdown", ProviderShutdown),
            create_line_device: find(module, "TSPI_providerCreateLineDevice\0").map(|address| {
                // SAFETY: tspi.h's prototype.
                unsafe { std::mem::transmute::<*const c_void, ProviderCreateLineDevice>(address) }
            }),
            get_dev_caps: export!(module, "TSPI_lineGetDevCaps", LineGetDevCaps),
            get_address_caps: export!(module, "TSPI_lineGetAddressCaps", LineGetAddressCaps),
            open: export!(module, "TSPI_lineOpen", LineOpen),
            close: export!(module, "TSPI_lineClose", LineClose),
            set_default_media_detection: export!(
                module,
                "TSPI_lineSetDefaultMediaDetection",
                LineSetDefaultMediaDetection
            ),
            set_status_messages: export!(
                module,
                "TSPI_lineSetStatusMessages",
                LineSetStatusMessages
            ),
            get_line_dev_status: export!(module, "TSPI_lineGetLineDevStatus", LineGetLineDevStatus),
            make_call: export!(module, "TSPI_lineMakeCall", LineMakeCall),
            answer: export!(module, "TSPI_lineAnswer", LineCallRequest),
            drop: export!(module, "TSPI_lineDrop", LineCallRequest),
            close_call: export!(module, "TSPI_lineCloseCall", LineCloseCall),
            dial: export!(module, "TSPI_lineDial", LineDial),
            park: export!(module, "TSPI_linePark", LinePark),
            get_call_info: export!(module, "TSPI_lineGetCallInfo", LineGetCallInfo),
            get_call_status: export!(module, "TSPI_lineGetCallStatus", LineGetCallStatus),
            configure: export!(module, "TapirConfigureW", TapirConfigureW),
        })
    }

    pub fn module(&self) -> HMODULE {
        self.module
    }

    /// Unloads the DLL, as TAPISRV does after `TSPI_providerShutdown`.
    pub fn unload(self) -> bool {
        // SAFETY: the caller has shut the provider down; nothing of the DLL is used afterwards.
        unsafe { FreeLibrary(self.module) != 0 }
    }

    pub fn dev_caps(&self, device: u32, total: u32) -> (i32, VarStruct<LINEDEVCAPS>) {
        let mut caps = VarStruct::with_total_size(total);
        // SAFETY: a buffer of `total` bytes with dwTotalSize set.
        let result = unsafe { (self.get_dev_caps)(device, TSPI_VERSION, 0, caps.as_mut_ptr()) };
        (result, caps)
    }

    pub fn address_caps(&self, device: u32, total: u32) -> (i32, VarStruct<LINEADDRESSCAPS>) {
        let mut caps = VarStruct::with_total_size(total);
        // SAFETY: as above.
        let result =
            unsafe { (self.get_address_caps)(device, 0, TSPI_VERSION, 0, caps.as_mut_ptr()) };
        (result, caps)
    }

    pub fn line_dev_status(&self, line: HDRVLINE) -> (i32, VarStruct<LINEDEVSTATUS>) {
        let mut status = VarStruct::with_total_size(1024);
        // SAFETY: as above.
        let result = unsafe { (self.get_line_dev_status)(line, status.as_mut_ptr()) };
        (result, status)
    }

    pub fn call_info(&self, call: HDRVCALL) -> (i32, VarStruct<LINECALLINFO>) {
        let mut info = VarStruct::with_total_size(4096);
        // SAFETY: as above.
        let result = unsafe { (self.get_call_info)(call, info.as_mut_ptr()) };
        (result, info)
    }

    pub fn call_status(&self, call: HDRVCALL) -> (i32, VarStruct<LINECALLSTATUS>) {
        let mut status = VarStruct::with_total_size(1024);
        // SAFETY: as above.
        let result = unsafe { (self.get_call_status)(call, status.as_mut_ptr()) };
        (result, status)
    }

    /// `TSPI_lineOpen` with the harness's event callback.
    pub fn open_line(&self, device: u32, tapi_line: usize) -> Result<HDRVLINE, String> {
        let mut driver_line: HDRVLINE = std::ptr::null_mut();
        // SAFETY: valid out pointer; the callback lives as long as the process.
        let result = unsafe {
            (self.open)(
                device,
                tapi_line as *mut c_void,
                &mut driver_line,
                TSPI_VERSION,
                Some(journal::line_event_proc),
            )
        };
        if result != 0 {
            return Err(format!("TSPI_lineOpen({device}) = {result:#x}"));
        }
        if driver_line.is_null() {
            return Err(format!(
                "TSPI_lineOpen({device}) succeeded without an HDRVLINE"
            ));
        }
        Ok(driver_line)
    }
}
