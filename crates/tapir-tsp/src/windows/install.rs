//! Adding and removing the provider through TAPI's own functions, for the MSI's custom actions
//! and for administrators:
//!
//! - `rundll32 tapir.tsp,TapirInstall --server ws://... --token ...` (the options of
//!   `TapirConfigure` without `--provider`): `lineAddProvider`, then the settings for the
//!   permanent provider id TAPI assigned.
//! - `rundll32 tapir.tsp,TapirRemove`: `lineRemoveProvider` for each instance of this file,
//!   then their settings.
//!
//! TAPI's provider list is private to TAPI (its registry key is not a contract), so both go
//! through `lineGetProviderList`, `lineAddProvider` and `lineRemoveProvider` only.
//!
//! rundll32 ignores what an entry point returns and has no console of its own, so each outcome
//! is printed (for a person at a command prompt) and logged synchronously to the provider's
//! log directory (for an installer, whose custom actions' output nobody sees).

#![allow(non_snake_case)] // rundll32 finds the entry points by these names.

use std::mem::{offset_of, size_of};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::ptr::null_mut;

use thiserror::Error;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use windows_sys::Win32::Devices::Tapi::{
    LINEERR_BADDEVICEID, LINEERR_INCOMPATIBLEAPIVERSION, LINEERR_INIFILECORRUPT,
    LINEERR_INVALPARAM, LINEERR_INVALPOINTER, LINEERR_NODRIVER, LINEERR_NOMEM,
    LINEERR_NOMULTIPLEINSTANCE, LINEERR_OPERATIONFAILED, LINEERR_OPERATIONUNAVAIL,
    LINEERR_STRUCTURETOOSMALL, LINEPROVIDERENTRY, LINEPROVIDERLIST, lineAddProviderW,
    lineGetProviderListW, lineRemoveProvider,
};
use windows_sys::Win32::Foundation::{
    ERROR_FILE_NOT_FOUND, ERROR_SUCCESS, HINSTANCE, HWND, WIN32_ERROR,
};
use windows_sys::Win32::System::Registry::{
    HKEY, HKEY_LOCAL_MACHINE, KEY_READ, RegCloseKey, RegDeleteKeyW, RegDeleteTreeW, RegOpenKeyExW,
    RegQueryInfoKeyW,
};
use windows_sys::Win32::System::SystemInformation::GetSystemDirectoryW;

use super::{own_path, read_wide, settings, wide};
use crate::config::{ConfigError, StoredSettings, default_log_dir, parse_install_args};

/// The TAPI version this code speaks to `lineGetProviderList` (2.0: every Windows since 2000).
const TAPI_VERSION: u32 = 0x0002_0000;

/// Where the provider instances' settings live (see `settings`), deepest first: each is
/// deleted once it is empty, so removing the last instance leaves nothing of tapir behind.
const SETTINGS_KEYS: [&str; 3] = [
    "SOFTWARE\\tapir\\TSP\\Providers",
    "SOFTWARE\\tapir\\TSP",
    "SOFTWARE\\tapir",
];

#[derive(Debug, Error)]
enum InstallError {
    #[error(transparent)]
    Settings(#[from] ConfigError),
    #[error("cannot find this DLL's own file")]
    OwnFile,
    #[error(
        "{file} is already TAPI provider {id}: change its settings with \
         rundll32 {file},TapirConfigure --provider {id} ..., or remove it first with \
         rundll32 {file},TapirRemove (LINEERR_NOMULTIPLEINSTANCE)"
    )]
    AlreadyInstalled { file: String, id: u32 },
    #[error("TAPI's {function} failed: {} (0x{code:08X})", tapi_error_name(*.code))]
    Tapi { function: &'static str, code: u32 },
    #[error(
        "TAPI added provider {id}, but its settings could not be stored ({source}); \
         the provider was removed again"
    )]
    SettingsNotStored { id: u32, source: ConfigError },
    #[error("the settings of provider {id} could not be deleted (Windows error {code})")]
    SettingsNotDeleted { id: u32, code: u32 },
    #[error("failed unexpectedly (a panic)")]
    Panicked,
}

fn tapi_error_name(code: u32) -> &'static str {
    match code {
        LINEERR_BADDEVICEID => "LINEERR_BADDEVICEID",
        LINEERR_INCOMPATIBLEAPIVERSION => "LINEERR_INCOMPATIBLEAPIVERSION",
        LINEERR_INIFILECORRUPT => "LINEERR_INIFILECORRUPT",
        LINEERR_INVALPARAM => "LINEERR_INVALPARAM",
        LINEERR_INVALPOINTER => "LINEERR_INVALPOINTER",
        LINEERR_NODRIVER => "LINEERR_NODRIVER (the provider refused to install or load)",
        LINEERR_NOMEM => "LINEERR_NOMEM",
        LINEERR_NOMULTIPLEINSTANCE => "LINEERR_NOMULTIPLEINSTANCE",
        LINEERR_OPERATIONFAILED => {
            "LINEERR_OPERATIONFAILED (is the Telephony service available, and is this an \
             administrator?)"
        }
        LINEERR_OPERATIONUNAVAIL => "LINEERR_OPERATIONUNAVAIL",
        LINEERR_STRUCTURETOOSMALL => "LINEERR_STRUCTURETOOSMALL",
        _ => "an unknown TAPI error",
    }
}

/// A TAPI function's answer: 0, or a `LINEERR_*` (negative as an `i32`).
fn tapi_result(function: &'static str, result: i32) -> Result<(), InstallError> {
    if result == 0 {
        Ok(())
    } else {
        Err(InstallError::Tapi {
            function,
            code: result as u32,
        })
    }
}

// ---- Entry points --------------------------------------------------------------------------

/// `rundll32 tapir.tsp,TapirInstall --server ws://host:port --token T [--user U --password P
/// --ca-file F --mode M --log-level L --log-dir D]`; also `--name=value`, where an empty value
/// is no value (the MSI passes every property, given or not).
#[unsafe(no_mangle)]
pub unsafe extern "system" fn TapirInstallW(
    _window: HWND,
    _instance: HINSTANCE,
    command_line: *const u16,
    _show: i32,
) {
    let line = unsafe { read_wide(command_line) }.unwrap_or_default();
    let settings = parse_install_args(&line).and_then(checked);
    let log_dir = settings
        .as_ref()
        .ok()
        .and_then(|(_, log_dir)| log_dir.clone())
        .unwrap_or_else(default_log_dir);
    run_logged("TapirInstall", &log_dir, || install(settings?.0));
}

/// `rundll32 tapir.tsp,TapirRemove`: removes every instance of this file from TAPI, with its
/// settings. Nothing installed is not a failure.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn TapirRemoveW(
    _window: HWND,
    _instance: HINSTANCE,
    _command_line: *const u16,
    _show: i32,
) {
    run_logged("TapirRemove", &default_log_dir(), remove);
}

/// The settings, checked to make a whole configuration before TAPI is touched, with the log
/// directory they name.
fn checked(settings: StoredSettings) -> Result<(StoredSettings, Option<PathBuf>), ConfigError> {
    // The same default user as the provider will have (see `settings::config`).
    let default_user = std::env::var("USERNAME").ok();
    let config = settings.to_config(default_user.as_deref())?;
    Ok((settings, config.log_dir))
}

/// Runs an entry point's work with its tracing written to the log directory as it happens
/// (the provider's own log writer is asynchronous and could lose the last lines when rundll32
/// exits), then prints and logs the outcome.
fn run_logged(what: &str, log_dir: &Path, work: impl FnOnce() -> Result<String, InstallError>) {
    let outcome = with_log_file(log_dir, || {
        let outcome = catch_unwind(AssertUnwindSafe(work)).unwrap_or(Err(InstallError::Panicked));
        match &outcome {
            Ok(done) => tracing::info!("{what}: {done}"),
            Err(e) => tracing::error!("{what}: {e}"),
        }
        outcome
    });
    match outcome {
        Ok(done) => println!("{what}: {done}"),
        Err(e) => eprintln!("{what}: {e}"),
    }
}

/// Runs `work` with a tracing subscriber that appends to `tapir-tsp.<date>.log` in `log_dir`
/// (the provider's own file) synchronously; without a writable directory, without a log.
fn with_log_file<T>(log_dir: &Path, work: impl FnOnce() -> T) -> T {
    // The appender creates a missing directory too, but complains on stderr first.
    let _ = std::fs::create_dir_all(log_dir);
    let appender = RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix("tapir-tsp")
        .filename_suffix("log")
        .max_log_files(7)
        .build(log_dir);
    match appender {
        Ok(appender) => {
            let subscriber = tracing_subscriber::fmt()
                .with_writer(appender)
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .finish();
            tracing::subscriber::with_default(subscriber, work)
        }
        Err(e) => {
            eprintln!("no log: cannot write to {}: {e}", log_dir.display());
            work()
        }
    }
}

// ---- Install and remove --------------------------------------------------------------------

fn install(settings: StoredSettings) -> Result<String, InstallError> {
    let own = OwnFile::find()?;
    if let Some(id) = installed_ids(&own.file_name)?.first() {
        return Err(InstallError::AlreadyInstalled {
            file: own.file_name,
            id: *id,
        });
    }
    let name = wide(&own.name_for_tapi);
    let mut id = 0u32;
    // TAPI calls TUISPI_providerInstall with the new id inside lineAddProvider, before the
    // Telephony service may start the provider: it stores these there, so the provider never
    // starts without its settings.
    *SETTINGS_FOR_NEW_PROVIDER
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some(settings.clone());
    // SAFETY: a NUL-terminated name and an out-pointer; no owner window (nothing to ask: the
    // provider's TUISPI_providerInstall shows no dialog).
    let added = unsafe { lineAddProviderW(name.as_ptr(), null_mut(), &mut id) };
    let held = SETTINGS_FOR_NEW_PROVIDER
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    tapi_result("lineAddProvider", added)?;
    if held.is_none() {
        tracing::info!(
            provider = id,
            "the settings were stored during lineAddProvider"
        );
    }
    tracing::info!(provider = id, file = %own.name_for_tapi, "TAPI added the provider");
    if let Err(source) = store(id, &settings) {
        // Leave nothing half-installed: a provider without settings cannot start.
        if let Err(e) = remove_provider(id) {
            tracing::error!(provider = id, "could not remove the provider again: {e}");
        }
        return Err(InstallError::SettingsNotStored { id, source });
    }
    Ok(format!(
        "{} installed as TAPI provider {id}; restart the Telephony service or the TAPI \
         applications if they do not show its lines",
        own.file_name
    ))
}

/// The settings `TapirInstall` is adding a provider with, until `TUISPI_providerInstall` takes
/// them.
static SETTINGS_FOR_NEW_PROVIDER: std::sync::Mutex<Option<StoredSettings>> =
    std::sync::Mutex::new(None);

/// `TUISPI_providerInstall` during `TapirInstall`'s `lineAddProvider`: stores the settings for
/// the id TAPI just assigned. Nothing to do when TAPI adds the provider another way (the
/// configuration dialog or `TapirConfigure` provide the settings then).
pub(super) fn store_held_settings(id: u32) -> Result<(), ConfigError> {
    let held = SETTINGS_FOR_NEW_PROVIDER
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    match held {
        Some(settings) => store(id, &settings),
        None => Ok(()),
    }
}

/// Stores the settings and reads them back as a whole configuration, as the provider will.
fn store(id: u32, settings: &StoredSettings) -> Result<(), ConfigError> {
    settings::save(id, settings)?;
    settings::config(id).map(|_| ())
}

fn remove() -> Result<String, InstallError> {
    let own = OwnFile::find()?;
    let ids = installed_ids(&own.file_name)?;
    if ids.is_empty() {
        return Ok(format!(
            "{} is not a TAPI provider here; nothing to remove",
            own.file_name
        ));
    }
    for id in &ids {
        remove_provider(*id)?;
        delete_settings(*id)?;
        tracing::info!(provider = id, "removed, with its settings");
    }
    delete_empty_settings_keys();
    let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
    Ok(format!(
        "{} removed from TAPI (provider {})",
        own.file_name,
        ids.join(", ")
    ))
}

fn remove_provider(id: u32) -> Result<(), InstallError> {
    // SAFETY: plain values; no owner window (TUISPI_providerRemove shows no dialog).
    tapi_result("lineRemoveProvider", unsafe {
        lineRemoveProvider(id, null_mut())
    })
}

// ---- This DLL and TAPI's provider list ------------------------------------------------------

/// This DLL as TAPI should know it.
struct OwnFile {
    /// `tapir.tsp`: what the provider list is searched for.
    file_name: String,
    /// What `lineAddProvider` gets: the file name when the DLL is in the system directory,
    /// where TAPISRV finds it (as Microsoft's installers and TSP++ do), else the full path.
    name_for_tapi: String,
}

impl OwnFile {
    fn find() -> Result<OwnFile, InstallError> {
        let path = PathBuf::from(own_path().ok_or(InstallError::OwnFile)?);
        let file_name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .ok_or(InstallError::OwnFile)?;
        let in_system_directory = system_directory()
            .zip(path.parent())
            .is_some_and(|(system, parent)| same_path(&system, parent));
        let name_for_tapi = if in_system_directory {
            file_name.clone()
        } else {
            path.display().to_string()
        };
        Ok(OwnFile {
            file_name,
            name_for_tapi,
        })
    }
}

/// Windows paths compare without regard to case.
fn same_path(a: &Path, b: &Path) -> bool {
    a.to_string_lossy()
        .trim_end_matches('\\')
        .eq_ignore_ascii_case(b.to_string_lossy().trim_end_matches('\\'))
}

fn system_directory() -> Option<PathBuf> {
    let mut buffer = [0u16; 260];
    // SAFETY: the buffer and its length.
    let length = unsafe { GetSystemDirectoryW(buffer.as_mut_ptr(), buffer.len() as u32) };
    let length = length as usize;
    (length > 0 && length < buffer.len())
        .then(|| PathBuf::from(String::from_utf16_lossy(&buffer[..length])))
}

/// The permanent provider ids TAPI lists for `file_name` (whether TAPI holds it by name or by
/// path).
fn installed_ids(file_name: &str) -> Result<Vec<u32>, InstallError> {
    Ok(provider_list()?
        .into_iter()
        .filter(|(_, listed)| {
            let listed_name = listed.rsplit(['\\', '/']).next().unwrap_or(listed);
            listed_name.eq_ignore_ascii_case(file_name)
        })
        .map(|(id, _)| id)
        .collect())
}

/// TAPI's providers: permanent id and file name.
fn provider_list() -> Result<Vec<(u32, String)>, InstallError> {
    let mut size = 4096usize;
    // TAPI says how much it needs; a provider added meanwhile may need one more round.
    for _ in 0..3 {
        // u64 words: aligned for the structure.
        let mut buffer = vec![0u64; size.div_ceil(8)];
        let bytes = buffer.len() * 8;
        let list = buffer.as_mut_ptr().cast::<LINEPROVIDERLIST>();
        // SAFETY: the buffer holds at least a LINEPROVIDERLIST and is aligned for it.
        unsafe { (*list).dwTotalSize = bytes as u32 };
        tapi_result("lineGetProviderList", unsafe {
            lineGetProviderListW(TAPI_VERSION, list)
        })?;
        // SAFETY: TAPI filled the header.
        let needed = unsafe { (*list).dwNeededSize } as usize;
        if needed > bytes {
            size = needed;
            continue;
        }
        // SAFETY: the buffer's bytes, all initialised (zeroed, then written by TAPI).
        let raw = unsafe { std::slice::from_raw_parts(buffer.as_ptr().cast::<u8>(), bytes) };
        return Ok(parse_provider_list(raw));
    }
    Err(InstallError::Tapi {
        function: "lineGetProviderList",
        code: LINEERR_STRUCTURETOOSMALL,
    })
}

/// The entries of a filled `LINEPROVIDERLIST`, every offset checked against the buffer.
fn parse_provider_list(raw: &[u8]) -> Vec<(u32, String)> {
    let read = |offset: usize| -> Option<u32> {
        raw.get(offset..offset + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let count = read(offset_of!(LINEPROVIDERLIST, dwNumProviders)).unwrap_or(0) as usize;
    let first = read(offset_of!(LINEPROVIDERLIST, dwProviderListOffset)).unwrap_or(0) as usize;
    let mut entries = Vec::new();
    for index in 0..count.min(1024) {
        let at = first + index * size_of::<LINEPROVIDERENTRY>();
        let entry = (|| {
            let id = read(at + offset_of!(LINEPROVIDERENTRY, dwPermanentProviderID))?;
            let length = read(at + offset_of!(LINEPROVIDERENTRY, dwProviderFilenameSize))?;
            let offset = read(at + offset_of!(LINEPROVIDERENTRY, dwProviderFilenameOffset))?;
            let text = raw.get(offset as usize..offset as usize + length as usize)?;
            let units: Vec<u16> = text
                .chunks_exact(2)
                .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
                .take_while(|unit| *unit != 0)
                .collect();
            Some((id, String::from_utf16_lossy(&units)))
        })();
        entries.extend(entry);
    }
    entries
}

// ---- The settings' registry keys -------------------------------------------------------------

fn delete_settings(id: u32) -> Result<(), InstallError> {
    let path = wide(&format!("{}\\{id}", SETTINGS_KEYS[0]));
    // SAFETY: a NUL-terminated path under HKLM; the key goes with everything in it.
    let status = unsafe { RegDeleteTreeW(HKEY_LOCAL_MACHINE, path.as_ptr()) };
    match status {
        ERROR_SUCCESS | ERROR_FILE_NOT_FOUND => Ok(()),
        code => Err(InstallError::SettingsNotDeleted { id, code }),
    }
}

/// Deletes tapir's keys above the instances' settings once nothing is left in them.
fn delete_empty_settings_keys() {
    for path in SETTINGS_KEYS {
        if key_contents(path) != Some((0, 0)) {
            return;
        }
        let path = wide(path);
        // SAFETY: a NUL-terminated path under HKLM.
        let status: WIN32_ERROR = unsafe { RegDeleteKeyW(HKEY_LOCAL_MACHINE, path.as_ptr()) };
        if status != ERROR_SUCCESS {
            return;
        }
    }
}

/// A key's number of subkeys and values, if it exists.
fn key_contents(path: &str) -> Option<(u32, u32)> {
    let path = wide(path);
    let mut key: HKEY = null_mut();
    // SAFETY: a NUL-terminated path and an out-pointer.
    let status = unsafe { RegOpenKeyExW(HKEY_LOCAL_MACHINE, path.as_ptr(), 0, KEY_READ, &mut key) };
    if status != ERROR_SUCCESS {
        return None;
    }
    let (mut subkeys, mut values) = (0u32, 0u32);
    // SAFETY: an open key; only the two counts are asked for.
    let status = unsafe {
        RegQueryInfoKeyW(
            key,
            null_mut(),
            null_mut(),
            std::ptr::null(),
            &mut subkeys,
            null_mut(),
            null_mut(),
            &mut values,
            null_mut(),
            null_mut(),
            null_mut(),
            null_mut(),
        )
    };
    // SAFETY: opened above, closed once.
    unsafe { RegCloseKey(key) };
    (status == ERROR_SUCCESS).then_some((subkeys, values))
}
