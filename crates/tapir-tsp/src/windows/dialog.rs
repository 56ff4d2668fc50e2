//! The configuration dialog (`TUISPI_providerConfig`, from the Phone and Modem control panel):
//! server, credentials, mode and CA file, with "Test connection". Runs in the application's
//! process, not TAPISRV's; the test runs on its own thread and posts its answer back, so the
//! dialog never freezes. Secret fields left empty keep the stored secret.

use std::ptr::null_mut;
use std::sync::Mutex;

use windows_sys::Win32::Foundation::{HWND, LPARAM, WPARAM};
use windows_sys::Win32::UI::WindowsAndMessaging::{
    CB_ADDSTRING, CB_GETCURSEL, CB_SETCURSEL, DialogBoxIndirectParamW, EndDialog, GWLP_USERDATA,
    GetDlgItemTextW, GetWindowLongPtrW, IDCANCEL, IDOK, MB_ICONERROR, MB_OK, MessageBoxW,
    PostMessageW, SendDlgItemMessageW, SetDlgItemTextW, SetWindowLongPtrW, WM_APP, WM_CLOSE,
    WM_COMMAND, WM_INITDIALOG, WS_VSCROLL,
};

use super::{settings, wide};
use crate::config::{Mode, StoredSettings};
use crate::dialog_template::{Class, Item, WS_BORDER, WS_TABSTOP, build};
use crate::engine::test_connection;

const SERVER: u16 = 101;
const TOKEN: u16 = 102;
const USER: u16 = 103;
const PASSWORD: u16 = 104;
const MODE: u16 = 105;
const CA_FILE: u16 = 106;
const RESULT: u16 = 107;
const TEST: u16 = 110;
/// Posted by the test thread when its answer is in `TEST_ANSWER`.
const TEST_DONE: u32 = WM_APP + 1;

// The control styles as the template's DWORD.
const ES_AUTOHSCROLL: u32 = windows_sys::Win32::UI::WindowsAndMessaging::ES_AUTOHSCROLL as u32;
const ES_PASSWORD: u32 = windows_sys::Win32::UI::WindowsAndMessaging::ES_PASSWORD as u32;
const CBS_DROPDOWNLIST: u32 = windows_sys::Win32::UI::WindowsAndMessaging::CBS_DROPDOWNLIST as u32;
const BS_DEFPUSHBUTTON: u32 = windows_sys::Win32::UI::WindowsAndMessaging::BS_DEFPUSHBUTTON as u32;

const MODES: [Mode; 3] = [Mode::User, Mode::TerminalServer, Mode::All];

static TEST_ANSWER: Mutex<Option<String>> = Mutex::new(None);

fn label(id: u16, text: &str, y: i16) -> Item {
    Item {
        class: Class::Static,
        id,
        text: text.into(),
        style: 0,
        rect: (7, y + 2, 80, 10),
    }
}

fn field(id: u16, y: i16, extra: u32) -> Item {
    Item {
        class: Class::Edit,
        id,
        text: String::new(),
        style: WS_TABSTOP | WS_BORDER | ES_AUTOHSCROLL | extra,
        rect: (90, y, 180, 12),
    }
}

fn button(id: u16, text: &str, x: i16, style: u32) -> Item {
    Item {
        class: Class::Button,
        id,
        text: text.into(),
        style: WS_TABSTOP | style,
        rect: (x, 150, 60, 14),
    }
}

fn layout() -> Vec<u32> {
    let items = [
        label(0, "Server URL (wss://...):", 7),
        field(SERVER, 7, 0),
        label(0, "Application token:", 25),
        field(TOKEN, 25, ES_PASSWORD),
        label(0, "or user:", 43),
        field(USER, 43, 0),
        label(0, "Password:", 61),
        field(PASSWORD, 61, ES_PASSWORD),
        label(0, "Lines of:", 79),
        Item {
            class: Class::ComboBox,
            id: MODE,
            text: String::new(),
            style: WS_TABSTOP | CBS_DROPDOWNLIST | WS_VSCROLL,
            rect: (90, 79, 180, 60),
        },
        label(0, "Extra CA file (PEM):", 97),
        field(CA_FILE, 97, 0),
        Item {
            class: Class::Static,
            id: RESULT,
            text: "Secret fields left empty keep what is stored.".into(),
            style: 0,
            rect: (7, 115, 263, 30),
        },
        button(TEST, "&Test connection", 7, 0),
        button(IDOK as u16, "OK", 145, BS_DEFPUSHBUTTON),
        button(IDCANCEL as u16, "Cancel", 210, 0),
    ];
    build("tapir TAPI provider", (277, 171), &items)
}

/// Shows the dialog for `provider`; returns whether the settings were saved.
pub fn show(owner: HWND, provider: u32) -> bool {
    let template = layout();
    // SAFETY: a DWORD-aligned template that lives until the modal dialog returns.
    let result = unsafe {
        DialogBoxIndirectParamW(
            null_mut(),
            template.as_ptr().cast(),
            owner,
            Some(dialog_proc),
            provider as LPARAM,
        )
    };
    result == IDOK as isize
}

fn text_of(dialog: HWND, id: u16) -> String {
    let mut buffer = [0u16; 1024];
    // SAFETY: the buffer and its length in characters.
    let length = unsafe { GetDlgItemTextW(dialog, i32::from(id), buffer.as_mut_ptr(), 1024) };
    String::from_utf16_lossy(&buffer[..length as usize])
        .trim()
        .to_owned()
}

fn set_text(dialog: HWND, id: u16, text: &str) {
    let text = wide(text);
    // SAFETY: a NUL-terminated string.
    unsafe { SetDlgItemTextW(dialog, i32::from(id), text.as_ptr()) };
}

fn provider_of(dialog: HWND) -> u32 {
    // SAFETY: the value stored at WM_INITDIALOG.
    unsafe { GetWindowLongPtrW(dialog, GWLP_USERDATA) as u32 }
}

fn fill(dialog: HWND, provider: u32) {
    let stored = settings::load(provider).unwrap_or_default();
    let value = |name: &str| {
        stored
            .values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    set_text(dialog, SERVER, &value("Server"));
    set_text(dialog, USER, &value("User"));
    set_text(dialog, CA_FILE, &value("CaFile"));
    let mode = Mode::parse(&value("Mode")).unwrap_or_default();
    for name in [
        "The user's own lines",
        "A terminal server's assigned lines",
        "All lines (server application)",
    ] {
        let name = wide(name);
        // SAFETY: a NUL-terminated string for the combo box to copy.
        unsafe {
            SendDlgItemMessageW(
                dialog,
                i32::from(MODE),
                CB_ADDSTRING,
                0,
                name.as_ptr() as LPARAM,
            )
        };
    }
    let index = MODES.iter().position(|m| *m == mode).unwrap_or(0);
    // SAFETY: plain messages to our own controls.
    unsafe { SendDlgItemMessageW(dialog, i32::from(MODE), CB_SETCURSEL, index, 0) };
}

/// What the fields say, with stored secrets kept where the fields are empty.
fn entered(dialog: HWND, provider: u32) -> StoredSettings {
    let stored = settings::load(provider).unwrap_or_default();
    // SAFETY: a plain message to our own control.
    let selected = unsafe { SendDlgItemMessageW(dialog, i32::from(MODE), CB_GETCURSEL, 0, 0) };
    let mode = MODES
        .get(selected.max(0) as usize)
        .copied()
        .unwrap_or_default();
    let mut settings = StoredSettings::default();
    for (name, id) in [("Server", SERVER), ("User", USER), ("CaFile", CA_FILE)] {
        settings.values.push((name.into(), text_of(dialog, id)));
    }
    settings.values.push(("Mode".into(), mode.as_str().into()));
    for (name, id) in [("Token", TOKEN), ("Password", PASSWORD)] {
        let typed = text_of(dialog, id);
        let kept = stored
            .secrets
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone());
        if let Some(secret) = (!typed.is_empty()).then_some(typed).or(kept) {
            settings.secrets.push((name.into(), secret));
        }
    }
    // Keep what the dialog does not show (log settings).
    for (name, value) in stored.values {
        if !settings.values.iter().any(|(n, _)| *n == name) {
            settings.values.push((name, value));
        }
    }
    settings
}

fn start_test(dialog: HWND, provider: u32) {
    set_text(dialog, RESULT, "Testing...");
    let settings = entered(dialog, provider);
    let dialog_address = dialog as usize;
    std::thread::spawn(move || {
        let answer = match settings.to_config(std::env::var("USERNAME").ok().as_deref()) {
            Ok(config) => match test_connection(&config) {
                Ok(report) => report.to_string(),
                Err(e) => format!("failed: {e}"),
            },
            Err(e) => format!("incomplete: {e}"),
        };
        *TEST_ANSWER.lock().unwrap_or_else(|p| p.into_inner()) = Some(answer);
        // SAFETY: posting to a window that may have closed is harmless.
        unsafe { PostMessageW(dialog_address as HWND, TEST_DONE, 0, 0) };
    });
}

fn save(dialog: HWND, provider: u32) -> bool {
    let settings = entered(dialog, provider);
    let checked = settings
        .to_config(std::env::var("USERNAME").ok().as_deref())
        .and_then(|_| settings::save(provider, &settings));
    match checked {
        Ok(()) => true,
        Err(e) => {
            let text = wide(&e.to_string());
            let caption = wide("tapir TAPI provider");
            // SAFETY: NUL-terminated strings; a modal box owned by the dialog.
            unsafe {
                MessageBoxW(
                    dialog,
                    text.as_ptr(),
                    caption.as_ptr(),
                    MB_OK | MB_ICONERROR,
                )
            };
            false
        }
    }
}

unsafe extern "system" fn dialog_proc(
    dialog: HWND,
    message: u32,
    wparam: WPARAM,
    lparam: LPARAM,
) -> isize {
    let handled = std::panic::catch_unwind(|| match message {
        WM_INITDIALOG => {
            // SAFETY: our own dialog's user data.
            unsafe { SetWindowLongPtrW(dialog, GWLP_USERDATA, lparam) };
            fill(dialog, lparam as u32);
            1
        }
        WM_COMMAND => {
            let provider = provider_of(dialog);
            match (wparam & 0xFFFF) as i32 {
                id if id == i32::from(TEST) => start_test(dialog, provider),
                IDOK => {
                    if save(dialog, provider) {
                        // SAFETY: ends our own modal dialog.
                        unsafe { EndDialog(dialog, IDOK as isize) };
                    }
                }
                IDCANCEL => unsafe {
                    EndDialog(dialog, IDCANCEL as isize);
                },
                _ => return 0,
            }
            1
        }
        TEST_DONE => {
            let answer = TEST_ANSWER.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(answer) = answer {
                set_text(dialog, RESULT, &answer);
            }
            1
        }
        WM_CLOSE => {
            // SAFETY: ends our own modal dialog.
            unsafe { EndDialog(dialog, IDCANCEL as isize) };
            1
        }
        _ => 0,
    });
    handled.unwrap_or(0)
}
