//! A small element tree read with quick-xml, keyed by *local* names.
//!
//! CSTA peers disagree on namespaces (ed2 to ed6, vendor `privN` suffixes, prefixed or none at
//! all), so the tree drops prefixes and namespaces and keeps only what the mapping reads:
//! names, text and children. Attributes are not kept; nothing tapir maps needs them.

use quick_xml::Reader;
use quick_xml::events::Event;

/// Deeper documents are refused: no CSTA message nests this far, and the limit keeps
/// hostile input cheap.
const MAX_DEPTH: usize = 64;

/// One element: its local name, its text (trimmed) and its child elements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("the document has no root element")]
    Empty,
    #[error("the document nests deeper than {MAX_DEPTH} elements")]
    TooDeep,
}

impl Element {
    /// The first child called `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The text of the first child called `name`, when not empty.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name)
            .map(|c| c.text.as_str())
            .filter(|t| !t.is_empty())
    }

    /// The first element called `name` anywhere below, depth first.
    pub fn find(&self, name: &str) -> Option<&Element> {
        self.children.iter().find_map(|c| {
            if c.name == name {
                Some(c)
            } else {
                c.find(name)
            }
        })
    }

    /// Every child called `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// Reads a whole document into its root element.
pub fn parse(xml: &[u8]) -> Result<Element, XmlError> {
    let mut reader = Reader::from_reader(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| XmlError::Malformed(e.to_string()))?;
        match event {
            Event::Start(start) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                stack.push(element(start.local_name().as_ref()));
            }
            Event::Empty(empty) => {
                let done = element(empty.local_name().as_ref());
                if let Some(root) = close(&mut stack, done) {
                    return Ok(root);
                }
            }
            Event::End(_) => {
                let done = stack
                    .pop()
                    .ok_or_else(|| XmlError::Malformed("unbalanced end tag".into()))?;
                if let Some(root) = close(&mut stack, done) {
                    return Ok(root);
                }
            }
            Event::Text(text) => {
                let text = text
                    .decode()
                    .map_err(|e| XmlError::Malformed(e.to_string()))?;
                append_text(&mut stack, &text);
            }
            Event::CData(data) => {
                append_text(&mut stack, &String::from_utf8_lossy(&data));
            }
            Event::GeneralRef(reference) => {
                let resolved = resolve_reference(&String::from_utf8_lossy(&reference))?;
                append_text(&mut stack, &resolved);
            }
            Event::Eof => {
                return Err(if stack.is_empty() {
                    XmlError::Empty
                } else {
                    XmlError::Malformed("the document ends inside an element".into())
                });
            }
            _ => {}
        }
        buf.clear();
    }
}

fn element(local: &[u8]) -> Element {
    Element {
        name: String::from_utf8_lossy(local).into_owned(),
        ..Element::default()
    }
}

/// Attaches a finished element to its parent; returns it when it was the root.
fn close(stack: &mut [Element], mut done: Element) -> Option<Element> {
    // Entity references split text into pieces, so whitespace is trimmed only once whole.
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

/// The five predefined entities and character references (`&lt;` in OSV device ids).
fn resolve_reference(name: &str) -> Result<String, XmlError> {
    let known = match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => name
            .strip_prefix("#x")
            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
            .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
            .and_then(char::from_u32),
    };
    known
        .map(String::from)
        .ok_or_else(|| XmlError::Malformed(format!("unknown entity &{name};")))
}

/// Escapes text for an element body.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_namespaces_are_dropped() {
        let root = parse(
            br#"<?xml version="1.0"?><ns3:SnapshotDevice xmlns:ns3="urn:x"><ns3:snapshotObject>201</ns3:snapshotObject></ns3:SnapshotDevice>"#,
        )
        .unwrap();
        assert_eq!(root.name, "SnapshotDevice");
        assert_eq!(root.child_text("snapshotObject"), Some("201"));
    }

    #[test]
    fn entities_are_resolved_in_text() {
        let root = parse(b"<a><b>N&lt;3021&gt;;noa=nk &#65;</b></a>").unwrap();
        assert_eq!(root.child_text("b"), Some("N<3021>;noa=nk A"));
    }

    #[test]
    fn broken_documents_are_errors() {
        assert!(matches!(parse(b"<a><b></a>"), Err(XmlError::Malformed(_))));
        assert_eq!(parse(b""), Err(XmlError::Empty));
        assert!(parse(b"<a>").is_err());
        let deep = "<a>".repeat(100);
        assert_eq!(parse(deep.as_bytes()), Err(XmlError::TooDeep));
    }

    #[test]
    fn escape_covers_markup() {
        assert_eq!(escape("a<&>'\""), "a&lt;&amp;&gt;&apos;&quot;");
    }
}
