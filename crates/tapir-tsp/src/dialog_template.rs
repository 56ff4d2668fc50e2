//! An in-memory Win32 dialog template (`DLGTEMPLATE` and its `DLGITEMTEMPLATE`s), so the
//! configuration dialog needs no resource compiler. The layout rules (WORD alignment of the
//! header, DWORD alignment of each item, UTF-16 strings, the predefined class atoms) are
//! platform-neutral and tested natively.

/// The predefined window classes, by atom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Button = 0x0080,
    Edit = 0x0081,
    Static = 0x0082,
    ComboBox = 0x0085,
}

/// One control: position and size in dialog units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub class: Class,
    pub id: u16,
    pub text: String,
    pub style: u32,
    pub rect: (i16, i16, i16, i16),
}

// Window and dialog styles (winuser.h).
pub const WS_CHILD: u32 = 0x4000_0000;
pub const WS_VISIBLE: u32 = 0x1000_0000;
pub const WS_TABSTOP: u32 = 0x0001_0000;
pub const WS_BORDER: u32 = 0x0080_0000;
const WS_POPUP: u32 = 0x8000_0000;
const WS_CAPTION: u32 = 0x00C0_0000;
const WS_SYSMENU: u32 = 0x0008_0000;
const DS_SETFONT: u32 = 0x40;
const DS_MODALFRAME: u32 = 0x80;
const DS_CENTER: u32 = 0x800;

fn push_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn push_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn push_text(out: &mut Vec<u8>, text: &str) {
    for unit in text.encode_utf16().chain([0]) {
        push_u16(out, unit);
    }
}

fn align(out: &mut Vec<u8>, to: usize) {
    while !out.len().is_multiple_of(to) {
        out.push(0);
    }
}

/// A modal, centred dialog with a caption, the "MS Shell Dlg" font and `items`. The bytes are
/// returned as `u32`s so the template starts DWORD-aligned, as `DialogBoxIndirectParam` needs.
pub fn build(title: &str, size: (i16, i16), items: &[Item]) -> Vec<u32> {
    let mut out = Vec::new();
    push_u32(
        &mut out,
        WS_POPUP | WS_CAPTION | WS_SYSMENU | DS_MODALFRAME | DS_SETFONT | DS_CENTER,
    );
    push_u32(&mut out, 0);
    push_u16(&mut out, items.len() as u16);
    for value in [0, 0, size.0, size.1] {
        push_u16(&mut out, value as u16);
    }
    push_u16(&mut out, 0); // no menu
    push_u16(&mut out, 0); // the default dialog class
    push_text(&mut out, title);
    push_u16(&mut out, 9);
    push_text(&mut out, "MS Shell Dlg");
    for item in items {
        align(&mut out, 4);
        push_u32(&mut out, item.style | WS_CHILD | WS_VISIBLE);
        push_u32(&mut out, 0);
        let (x, y, cx, cy) = item.rect;
        for value in [x, y, cx, cy] {
            push_u16(&mut out, value as u16);
        }
        push_u16(&mut out, item.id);
        push_u16(&mut out, 0xFFFF);
        push_u16(&mut out, item.class as u16);
        push_text(&mut out, &item.text);
        push_u16(&mut out, 0); // no creation data
    }
    align(&mut out, 4);
    out.chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_start_on_dword_boundaries_with_their_class_atoms() {
        let items = [
            Item {
                class: Class::Static,
                id: 7,
                text: "Server:".into(),
                style: 0,
                rect: (5, 5, 60, 10),
            },
            Item {
                class: Class::Edit,
                id: 8,
                text: String::new(),
                style: WS_TABSTOP | WS_BORDER,
                rect: (70, 5, 150, 12),
            },
            Item {
                class: Class::ComboBox,
                id: 9,
                text: String::new(),
                style: WS_TABSTOP,
                rect: (70, 20, 150, 40),
            },
            Item {
                class: Class::Button,
                id: 1,
                text: "OK".into(),
                style: WS_TABSTOP,
                rect: (170, 40, 50, 14),
            },
        ];
        let words = build("tapir", (230, 60), &items);
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 4, "item count");
        // Header: 18 bytes, no menu and the default class (4), "tapir\0" (12), point size
        // (2), "MS Shell Dlg\0" (26) = 62, so the first item starts at 64.
        let first = 64;
        let style = u32::from_le_bytes(bytes[first..first + 4].try_into().unwrap());
        assert_eq!(style, WS_CHILD | WS_VISIBLE);
        let class_at = first + 18;
        assert_eq!(&bytes[class_at..class_at + 4], &[0xFF, 0xFF, 0x82, 0x00]);
        // Item header (18), class (4), "Server:\0" (16), no creation data (2): the second
        // item at 64 + 40 = 104.
        let second = 104;
        assert_eq!(
            u16::from_le_bytes([bytes[second + 16], bytes[second + 17]]),
            8,
            "the second item's id"
        );
        assert_eq!(&bytes[second + 18..second + 22], &[0xFF, 0xFF, 0x81, 0x00]);
        // The empty edit: 22 + "\0" (2) + 2 = 26, so the combo box starts at 104 + 28 = 132.
        assert_eq!(&bytes[132 + 18..132 + 22], &[0xFF, 0xFF, 0x85, 0x00]);
        assert_eq!(words.len() * 4, bytes.len());
        assert!(bytes.len().is_multiple_of(4));
    }
}
