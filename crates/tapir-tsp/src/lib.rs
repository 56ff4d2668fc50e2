//! tapir's Windows TAPI service provider.
use windows_sys::Win32::Devices::Tapi::LINEDEVCAPS;
pub fn size() -> usize { std::mem::size_of::<LINEDEVCAPS>() }
