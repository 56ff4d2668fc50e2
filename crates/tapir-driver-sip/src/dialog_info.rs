//! RFC 4235 `application/dialog-info+xml` documents, read by local name whatever the
//! namespace prefix, with quick-xml.
//!
//! The reader is lenient where Kamailio is not strict (the state `Trying` is capitalised,
//! `direction` may be missing, an initial NOTIFY has an empty body) and strict where input is
//! garbage: anything that is not a well-formed `dialog-info` document is an error, never a
//! panic. rsipstack's own `parse_dialog_info` reads only the first dialog and drops the
//! `call-id`, `version` and identities, which the mapping needs.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// How deep elements may nest before the document is refused.
const MAX_DEPTH: usize = 16;
/// The largest body read; Kamailio's documents are a few kilobytes.
pub const MAX_BODY: usize = 256 * 1024;

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogInfoError {
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("the root element is `{0}`, not `dialog-info`")]
    NotDialogInfo(String),
    #[error("the `{0}` attribute is missing or invalid")]
    BadAttribute(&'static str),
    #[error("the body is larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("elements nest deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// The document's `state` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentState {
    Full,
    Partial,
}

/// A dialog's direction as seen from the entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Initiator,
    Recipient,
}

/// RFC 4235's dialog states, compared case-insensitively (Kamailio sends `Trying`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DialogState {
    Trying,
    Proceeding,
    Early,
    Confirmed,
    Terminated,
}

impl DialogState {
    fn parse(text: &str) -> Option<DialogState> {
        let state = match text.trim().to_ascii_lowercase().as_str() {
            "trying" => DialogState::Trying,
            "proceeding" => DialogState::Proceeding,
            "early" => DialogState::Early,
            "confirmed" => DialogState::Confirmed,
            "terminated" => DialogState::Terminated,
            _ => return None,
        };
        Some(state)
    }
}

/// One side of a dialog: its identity URI and display name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Participant {
    pub identity: Option<String>,
    pub display: Option<String>,
    pub target: Option<String>,
}

impl Participant {
    /// The user part of the identity (or target) URI, e.g. `201` for `sip:201@host`.
    pub fn user(&self) -> Option<String> {
        let uri = self.identity.as_deref().or(self.target.as_deref())?;
        uri_user(uri)
    }
}

/// The user part of a `sip:`, `sips:` or `tel:` URI.
pub fn uri_user(uri: &str) -> Option<String> {
    let uri = uri.trim().trim_start_matches('<');
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))
        .or_else(|| uri.strip_prefix("tel:"))?;
    let end = rest.find(['@', ';', '>', '?']).unwrap_or(rest.len());
    let user = &rest[..end];
    if rest[end..].starts_with('@') || uri.starts_with("tel:") {
        (!user.is_empty()).then(|| user.to_owned())
    } else {
        None
    }
}

/// One `<dialog>` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogEntry {
    pub id: String,
    pub call_id: Option<String>,
    pub direction: Option<Direction>,
    pub state: DialogState,
    /// The `event` attribute of a terminated state (`rejected`, `cancelled`, ...).
    pub event: Option<String>,
    /// The `code` attribute of a terminated state (the final SIP status).
    pub code: Option<u16>,
    pub local: Participant,
    pub remote: Participant,
}

/// A whole `<dialog-info>` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogInfo {
    pub version: u64,
    pub state: DocumentState,
    pub entity: String,
    pub dialogs: Vec<DialogEntry>,
}

/// Reads a NOTIFY body. An empty (or all-whitespace) body, as Kamailio sends for an entity
/// without dialogs, is `Ok(None)`.
pub fn parse(body: &[u8]) -> Result<Option<DialogInfo>, DialogInfoError> {
    if body.len() > MAX_BODY {
        return Err(DialogInfoError::TooLarge);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let root = tree(body)?;
    if root.name != "dialog-info" {
        return Err(DialogInfoError::NotDialogInfo(root.name));
    }
    let version = root
        .attr("version")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or(DialogInfoError::BadAttribute("version"))?;
    let state = match root.attr("state").map(str::to_ascii_lowercase).as_deref() {
        Some("full") => DocumentState::Full,
        Some("partial") => DocumentState::Partial,
        _ => return Err(DialogInfoError::BadAttribute("state")),
    };
    let entity = root
        .attr("entity")
        .ok_or(DialogInfoError::BadAttribute("entity"))?
        .to_owned();
    let mut dialogs = Vec::new();
    for dialog in root.children.iter().filter(|c| c.name == "dialog") {
        dialogs.push(dialog_entry(dialog)?);
    }
    Ok(Some(DialogInfo {
        version,
        state,
        entity,
        dialogs,
    }))
}

fn dialog_entry(element: &Element) -> Result<DialogEntry, DialogInfoError> {
    let id = element
        .attr("id")
        .ok_or(DialogInfoError::BadAttribute("id"))?
        .to_owned();
    let direction = match element
        .attr("direction")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("initiator") => Some(Direction::Initiator),
        Some("recipient") => Some(Direction::Recipient),
        _ => None,
    };
    let state_element = element
        .child("state")
        .ok_or(DialogInfoError::BadAttribute("state"))?;
    let state =
        DialogState::parse(&state_element.text).ok_or(DialogInfoError::BadAttribute("state"))?;
    Ok(DialogEntry {
        id,
        call_id: element.attr("call-id").map(str::to_owned),
        direction,
        state,
        event: state_element.attr("event").map(str::to_ascii_lowercase),
        code: state_element
            .attr("code")
            .and_then(|c| c.trim().parse().ok()),
        local: participant(element.child("local")),
        remote: participant(element.child("remote")),
    })
}

fn participant(element: Option<&Element>) -> Participant {
    let Some(element) = element else {
        return Participant::default();
    };
    let identity = element.child("identity");
    let non_empty = |s: &str| {
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_owned())
    };
    Participant {
        identity: identity.and_then(|i| non_empty(&i.text)),
        display: identity.and_then(|i| i.attr("display")).and_then(non_empty),
        target: element
            .child("target")
            .and_then(|t| t.attr("uri"))
            .and_then(non_empty),
    }
}

/// An element with its attributes, text and children (local names only).
#[derive(Debug, Default)]
struct Element {
    name: String,
    attributes: Vec<(String, String)>,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
}

fn tree(xml: &[u8]) -> Result<Element, DialogInfoError> {
    let malformed = |e: &dyn std::fmt::Display| DialogInfoError::Malformed(e.to_string());
    let mut reader = Reader::from_reader(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| malformed(&e))?;
        match event {
            Event::Start(start) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(DialogInfoError::TooDeep);
                }
                stack.push(element(&start)?);
            }
            Event::Empty(empty) => {
                if let Some(root) = close(&mut stack, element(&empty)?) {
                    return Ok(root);
                }
            }
            Event::End(_) => {
                let done = stack
                    .pop()
                    .ok_or_else(|| DialogInfoError::Malformed("unbalanced end tag".into()))?;
                if let Some(root) = close(&mut stack, done) {
                    return Ok(root);
                }
            }
            Event::Text(text) => {
                let text = text.decode().map_err(|e| malformed(&e))?;
                append_text(&mut stack, &text);
            }
            Event::CData(data) => append_text(&mut stack, &String::from_utf8_lossy(&data)),
            Event::GeneralRef(reference) => {
                let name = String::from_utf8_lossy(&reference).into_owned();
                append_text(&mut stack, &resolve_reference(&name)?);
            }
            Event::Eof => {
                return Err(DialogInfoError::Malformed(if stack.is_empty() {
                    "no root element".into()
                } else {
                    "the document ends inside an element".into()
                }));
            }
            _ => {}
        }
        buf.clear();
    }
}

fn element(start: &BytesStart<'_>) -> Result<Element, DialogInfoError> {
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| DialogInfoError::Malformed(e.to_string()))?;
        let value = attribute
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| DialogInfoError::Malformed(e.to_string()))?;
        attributes.push((
            String::from_utf8_lossy(attribute.key.local_name().as_ref()).into_owned(),
            value.into_owned(),
        ));
    }
    Ok(Element {
        name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
        attributes,
        ..Element::default()
    })
}

fn close(stack: &mut [Element], mut done: Element) -> Option<Element> {
    let trimmed = done.text.trim();
    if trimmed.len() != done.text.len() {
        done.text = trimmed.to_owned();
    }
    match stack.last_mut() {
        Some(parent) => {
            parent.children.push(done);
            None
        }
        None => Some(done),
    }
}

fn append_text(stack: &mut [Element], text: &str) {
    if let Some(current) = stack.last_mut() {
        current.text.push_str(text);
    }
}

fn resolve_reference(name: &str) -> Result<String, DialogInfoError> {
    let known = match name {
        "lt" => "<",
        "gt" => ">",
        "amp" => "&",
        "apos" => "'",
        "quot" => "\"",
        _ => {
            let code = name
                .strip_prefix("#x")
                .map(|hex| u32::from_str_radix(hex, 16))
                .or_else(|| name.strip_prefix('#').map(str::parse::<u32>))
                .and_then(Result::ok)
                .and_then(char::from_u32)
                .ok_or_else(|| DialogInfoError::Malformed(format!("unknown entity &{name};")))?;
            return Ok(code.to_string());
        }
    };
    Ok(known.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The NOTIFY body of sip-testbed.md §3, as Kamailio 5.6 sent it for 202.
    pub(crate) const CONFIRMED_202: &str = r#"<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="3" state="full" entity="sip:202@127.0.0.1">
  <dialog id="padi-6b03ba45-7e6f-3" call-id="6a3e5a0f23e4e303" direction="recipient">
    <state>confirmed</state>
    <remote><identity>sip:201@127.0.0.1</identity><target uri="sip:201-0x5570900b9600@127.0.0.1:5210"/></remote>
    <local><identity>sip:202@127.0.0.1;transport=udp</identity><target uri="sip:202@127.0.0.1;transport=udp"/></local>
  </dialog>
</dialog-info>"#;

    #[test]
    fn the_test_bed_sample_reads_fully() {
        let info = parse(CONFIRMED_202.as_bytes()).unwrap().unwrap();
        assert_eq!(info.version, 3);
        assert_eq!(info.state, DocumentState::Full);
        assert_eq!(info.entity, "sip:202@127.0.0.1");
        let [dialog] = &info.dialogs[..] else {
            panic!("one dialog expected")
        };
        assert_eq!(dialog.call_id.as_deref(), Some("6a3e5a0f23e4e303"));
        assert_eq!(dialog.direction, Some(Direction::Recipient));
        assert_eq!(dialog.state, DialogState::Confirmed);
        assert_eq!(dialog.remote.user().as_deref(), Some("201"));
        assert_eq!(dialog.local.user().as_deref(), Some("202"));
    }

    #[test]
    fn an_empty_body_is_no_document() {
        assert_eq!(parse(b""), Ok(None));
        assert_eq!(parse(b"\r\n  "), Ok(None));
    }

    #[test]
    fn capitalised_trying_and_prefixes_and_display_names_are_read() {
        let body = r#"<d:dialog-info xmlns:d="urn:ietf:params:xml:ns:dialog-info" version="0" state="FULL" entity="sip:201@127.0.0.1">
  <d:dialog id="x" call-id="abc" direction="initiator"><d:state>Trying</d:state>
  <d:remote><d:identity display="Bob &amp; Co">sip:202@127.0.0.1</d:identity></d:remote></d:dialog>
</d:dialog-info>"#;
        let info = parse(body.as_bytes()).unwrap().unwrap();
        let dialog = &info.dialogs[0];
        assert_eq!(dialog.state, DialogState::Trying);
        assert_eq!(dialog.direction, Some(Direction::Initiator));
        assert_eq!(dialog.remote.display.as_deref(), Some("Bob & Co"));
        assert_eq!(dialog.local, Participant::default());
    }

    #[test]
    fn terminated_states_carry_event_and_code() {
        let body = r#"<dialog-info version="9" state="partial" entity="sip:202@h">
  <dialog id="x" call-id="abc"><state event="rejected" code="486">terminated</state></dialog>
</dialog-info>"#;
        let info = parse(body.as_bytes()).unwrap().unwrap();
        assert_eq!(info.state, DocumentState::Partial);
        let dialog = &info.dialogs[0];
        assert_eq!(dialog.state, DialogState::Terminated);
        assert_eq!(dialog.event.as_deref(), Some("rejected"));
        assert_eq!(dialog.code, Some(486));
        assert_eq!(dialog.direction, None);
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let cases: [&[u8]; 10] = [
            b"<dialog-info",
            b"not xml at all",
            b"<presence/>",
            b"<dialog-info state=\"full\" entity=\"e\"/>",
            b"<dialog-info version=\"x\" state=\"full\" entity=\"e\"/>",
            b"<dialog-info version=\"1\" state=\"sideways\" entity=\"e\"/>",
            b"<dialog-info version=\"1\" state=\"full\" entity=\"e\"><dialog id=\"a\"><state>ringing</state></dialog></dialog-info>",
            b"<dialog-info version=\"1\" state=\"full\" entity=\"e\"><dialog><state>early</state></dialog></dialog-info>",
            b"<dialog-info version=\"1\" state=\"full\" entity=\"e\">&bogus;</dialog-info>",
            b"\xff\xfe<\x00",
        ];
        for body in cases {
            assert!(parse(body).is_err(), "{:?}", String::from_utf8_lossy(body));
        }
        let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
        assert_eq!(parse(deep.as_bytes()), Err(DialogInfoError::TooDeep));
        assert_eq!(
            parse(&vec![b' '; MAX_BODY + 1]),
            Err(DialogInfoError::TooLarge)
        );
    }

    #[test]
    fn user_parts_come_from_sip_and_tel_uris() {
        assert_eq!(
            uri_user("sip:201@127.0.0.1;transport=udp").as_deref(),
            Some("201")
        );
        assert_eq!(uri_user("<sips:ada@example.com>").as_deref(), Some("ada"));
        assert_eq!(uri_user("tel:+4930123").as_deref(), Some("+4930123"));
        assert_eq!(uri_user("sip:127.0.0.1:5060"), None);
        assert_eq!(uri_user("http://x"), None);
    }
}
