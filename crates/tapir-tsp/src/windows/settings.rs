//! Settings in the registry, secrets protected with DPAPI, and the log file.
//!
//! Each provider instance keeps its settings under
//! `HKLM\SOFTWARE\tapir\TSP\Providers\<permanent provider id>` (outside TAPI's own key, as
//! Microsoft asks). Plain values are `REG_SZ`; the token and the password are `REG_BINARY`
//! blobs from `CryptProtectData` with the machine key, so the Telephony service (another
//! account than the administrator who configured it) can read them, and a copy of the
//! registry without the machine is useless.

use std::ptr::{null, null_mut};
use std::sync::OnceLock;

use tracing_appender::non_blocking::WorkerGuard;
use windows_sys::Win32::Foundation::{ERROR_SUCCESS, LocalFree};
use windows_sys::Win32::Security::Cryptography::{
    CRYPT_INTEGER_BLOB, CRYPTPROTECT_LOCAL_MACHINE, CRYPTPROTECT_UI_FORBIDDEN, CryptProtectData,
    CryptUnprotectData,
};
use windows_sys::Win32::System::Registry::{
    HKEY, HKEY_LOCAL_MACHINE, KEY_READ, KEY_WRITE, REG_BINARY, REG_OPTION_NON_VOLATILE, REG_SZ,
    REG_VALUE_TYPE, RegCloseKey, RegCreateKeyExW, RegEnumValueW, RegOpenKeyExW, RegQueryValueExW,
    RegSetValueExW,
};

use super::wide;
use crate::config::{ConfigError, StoredSettings, TspConfig};

const SECRET_NAMES: [&str; 2] = ["Token", "Password"];

fn key_path(provider: u32) -> Vec<u16> {
    wide(&format!("SOFTWARE\\tapir\\TSP\\Providers\\{provider}"))
}

/// An open registry key, closed when dropped.
struct Key(HKEY);

impl Drop for Key {
    fn drop(&mut self) {
        // SAFETY: the key was opened by us and is closed once.
        unsafe { RegCloseKey(self.0) };
    }
}

fn store_error(what: &str, code: u32) -> ConfigError {
    ConfigError::Store(format!("{what} (Windows error {code})"))
}

/// Writes `settings` for `provider`, protecting the secrets.
pub fn save(provider: u32, settings: &StoredSettings) -> Result<(), ConfigError> {
    let mut handle: HKEY = null_mut();
    let path = key_path(provider);
    // SAFETY: valid NUL-terminated strings and out-pointer.
    let status = unsafe {
        RegCreateKeyExW(
            HKEY_LOCAL_MACHINE,
            path.as_ptr(),
            0,
            null(),
            REG_OPTION_NON_VOLATILE,
            KEY_WRITE,
            null(),
            &mut handle,
            null_mut(),
        )
    };
    if status != ERROR_SUCCESS {
        return Err(store_error("cannot create the settings key", status));
    }
    let key = Key(handle);
    for (name, value) in &settings.values {
        let data: Vec<u8> = wide(value).iter().flat_map(|u| u.to_le_bytes()).collect();
        set_value(&key, name, REG_SZ, &data)?;
    }
    for (name, secret) in &settings.secrets {
        set_value(&key, name, REG_BINARY, &protect(secret.as_bytes())?)?;
    }
    Ok(())
}

fn set_value(key: &Key, name: &str, kind: REG_VALUE_TYPE, data: &[u8]) -> Result<(), ConfigError> {
    let name_w = wide(name);
    // SAFETY: valid key, name and data of the given length.
    let status = unsafe {
        RegSetValueExW(
            key.0,
            name_w.as_ptr(),
            0,
            kind,
            data.as_ptr(),
            data.len() as u32,
        )
    };
    if status != ERROR_SUCCESS {
        return Err(store_error(&format!("cannot write {name}"), status));
    }
    Ok(())
}

/// Reads the settings of `provider`.
pub fn load(provider: u32) -> Result<StoredSettings, ConfigError> {
    let mut handle: HKEY = null_mut();
    let path = key_path(provider);
    // SAFETY: valid NUL-terminated path and out-pointer.
    let status =
        unsafe { RegOpenKeyExW(HKEY_LOCAL_MACHINE, path.as_ptr(), 0, KEY_READ, &mut handle) };
    if status != ERROR_SUCCESS {
        return Err(store_error(
            &format!("no settings for provider {provider}; run TapirConfigure"),
            status,
        ));
    }
    let key = Key(handle);
    let mut settings = StoredSettings::default();
    for name in value_names(&key) {
        let Some((kind, data)) = query(&key, &name) else {
            continue;
        };
        if SECRET_NAMES.contains(&name.as_str()) && kind == REG_BINARY {
            let plain = unprotect(&data)?;
            let text = String::from_utf8(plain)
                .map_err(|_| ConfigError::Store(format!("{name} is not text")))?;
            settings.secrets.push((name, text));
        } else if kind == REG_SZ {
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
                .take_while(|unit| *unit != 0)
                .collect();
            settings
                .values
                .push((name, String::from_utf16_lossy(&units)));
        }
    }
    Ok(settings)
}

fn value_names(key: &Key) -> Vec<String> {
    let mut names = Vec::new();
    for index in 0.. {
        let mut name = [0u16; 256];
        let mut length = name.len() as u32;
        // SAFETY: the buffer and its length in characters.
        let status = unsafe {
            RegEnumValueW(
                key.0,
                index,
                name.as_mut_ptr(),
                &mut length,
                null(),
                null_mut(),
                null_mut(),
                null_mut(),
            )
        };
        if status != ERROR_SUCCESS {
            break;
        }
        names.push(String::from_utf16_lossy(&name[..length as usize]));
    }
    names
}

fn query(key: &Key, name: &str) -> Option<(REG_VALUE_TYPE, Vec<u8>)> {
    let name_w = wide(name);
    let mut kind: REG_VALUE_TYPE = 0;
    let mut size = 0u32;
    // SAFETY: a size query with no buffer.
    let status = unsafe {
        RegQueryValueExW(
            key.0,
            name_w.as_ptr(),
            null(),
            &mut kind,
            null_mut(),
            &mut size,
        )
    };
    if status != ERROR_SUCCESS {
        return None;
    }
    let mut data = vec![0u8; size as usize];
    // SAFETY: a buffer of the size just reported.
    let status = unsafe {
        RegQueryValueExW(
            key.0,
            name_w.as_ptr(),
            null(),
            &mut kind,
            data.as_mut_ptr(),
            &mut size,
        )
    };
    (status == ERROR_SUCCESS).then(|| {
        data.truncate(size as usize);
        (kind, data)
    })
}

fn protect(plain: &[u8]) -> Result<Vec<u8>, ConfigError> {
    dpapi(plain, true)
}

fn unprotect(sealed: &[u8]) -> Result<Vec<u8>, ConfigError> {
    dpapi(sealed, false)
}

fn dpapi(input: &[u8], seal: bool) -> Result<Vec<u8>, ConfigError> {
    let blob_in = CRYPT_INTEGER_BLOB {
        cbData: input.len() as u32,
        pbData: input.as_ptr().cast_mut(),
    };
    let mut blob_out = CRYPT_INTEGER_BLOB {
        cbData: 0,
        pbData: null_mut(),
    };
    let flags = CRYPTPROTECT_LOCAL_MACHINE | CRYPTPROTECT_UI_FORBIDDEN;
    // SAFETY: valid blobs; DPAPI allocates the output, freed below with LocalFree.
    let ok = unsafe {
        if seal {
            CryptProtectData(
                &blob_in,
                null(),
                null(),
                null(),
                null(),
                flags,
                &mut blob_out,
            )
        } else {
            CryptUnprotectData(
                &blob_in,
                null_mut(),
                null(),
                null(),
                null(),
                flags,
                &mut blob_out,
            )
        }
    };
    if ok == 0 || blob_out.pbData.is_null() {
        return Err(ConfigError::Store(
            if seal {
                "DPAPI could not protect a secret"
            } else {
                "DPAPI could not read a secret"
            }
            .into(),
        ));
    }
    // SAFETY: DPAPI returned `cbData` bytes at `pbData`.
    let out =
        unsafe { std::slice::from_raw_parts(blob_out.pbData, blob_out.cbData as usize) }.to_vec();
    // SAFETY: allocated by DPAPI with LocalAlloc.
    unsafe { LocalFree(blob_out.pbData.cast()) };
    Ok(out)
}

static LOG_GUARD: OnceLock<Option<WorkerGuard>> = OnceLock::new();

/// Starts the rotating log file (daily, seven kept) the first time a provider starts.
pub fn start_logging(config: &TspConfig) {
    LOG_GUARD.get_or_init(|| {
        let dir = config
            .log_dir
            .clone()
            .unwrap_or_else(crate::config::default_log_dir);
        let appender = tracing_appender::rolling::Builder::new()
            .rotation(tracing_appender::rolling::Rotation::DAILY)
            .filename_prefix("tapir-tsp")
            .filename_suffix("log")
            .max_log_files(7)
            .build(&dir)
            .ok()?;
        let (writer, guard) = tracing_appender::non_blocking(appender);
        let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let installed = tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(false)
            .with_env_filter(filter)
            .try_init();
        installed.ok().map(|_| guard)
    });
}

/// Loads and checks a provider instance's configuration.
pub fn config(provider: u32) -> Result<TspConfig, ConfigError> {
    let default_user = std::env::var("USERNAME").ok();
    load(provider)?.to_config(default_user.as_deref())
}
