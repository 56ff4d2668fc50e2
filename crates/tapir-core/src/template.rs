//! Line names built from a per-instance template.
//!
//! Placeholders: `%c` long name, `%d` display name, `%h` alias or user name, `%e`
//! extension, `%E` extension with its node prefix, `%N` the line address as clients see it,
//! `%n` PBX host, `%p` `:port` (empty for the protocol's default port), `%P` raw port, `%u`
//! user@host, `%x` PBX name, `%i` instance name, `%%` a literal percent. A few presets name
//! common templates.

use std::fmt;

use tapir_provider::{Device, PbxIdentity};

/// Named templates an administrator can pick instead of writing one.
pub const PRESETS: &[(&str, &str)] = &[
    ("name", "%d"),
    ("extension", "%e"),
    ("extension - name", "%e - %d"),
    ("name (extension)", "%d (%e)"),
    ("instance: extension - name", "%i: %e - %d"),
    ("user@host", "%u"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placeholder {
    LongName,
    DisplayName,
    Alias,
    Extension,
    NodeExtension,
    Address,
    Host,
    PortSuffix,
    Port,
    UserAtHost,
    PbxName,
    Instance,
}

impl Placeholder {
    fn from_char(c: char) -> Option<Placeholder> {
        Some(match c {
            'c' => Placeholder::LongName,
            'd' => Placeholder::DisplayName,
            'h' => Placeholder::Alias,
            'e' => Placeholder::Extension,
            'E' => Placeholder::NodeExtension,
            'N' => Placeholder::Address,
            'n' => Placeholder::Host,
            'p' => Placeholder::PortSuffix,
            'P' => Placeholder::Port,
            'u' => Placeholder::UserAtHost,
            'x' => Placeholder::PbxName,
            'i' => Placeholder::Instance,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Value(Placeholder),
}

/// Why a template cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "unknown placeholder %{placeholder} at position {position}; known: %c %d %h %e %E %N %n %p %P %u %x %i %%"
    )]
    UnknownPlaceholder { placeholder: char, position: usize },
    #[error("a lone % at the end (position {position}); write %% for a percent sign")]
    DanglingPercent { position: usize },
    #[error("the template is empty")]
    Empty,
}

/// A parsed line-name template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineNameTemplate {
    source: String,
    pieces: Vec<Piece>,
}

impl Default for LineNameTemplate {
    fn default() -> Self {
        LineNameTemplate {
            source: "%d".into(),
            pieces: vec![Piece::Value(Placeholder::DisplayName)],
        }
    }
}

impl fmt::Display for LineNameTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Everything a template may draw on for one line.
pub struct NameContext<'a> {
    pub device: &'a Device,
    pub pbx: &'a PbxIdentity,
    pub instance: &'a str,
}

impl LineNameTemplate {
    /// Parses a template, or a preset's name. Errors give the position of the `%` (counting
    /// characters from 1).
    pub fn parse(text: &str) -> Result<LineNameTemplate, TemplateError> {
        let source = PRESETS
            .iter()
            .find(|(name, _)| *name == text)
            .map_or(text, |(_, t)| t);
        if source.is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = source.chars().enumerate();
        while let Some((index, c)) = chars.next() {
            if c != '%' {
                text.push(c);
                continue;
            }
            match chars.next() {
                None => {
                    return Err(TemplateError::DanglingPercent {
                        position: index + 1,
                    });
                }
                Some((_, '%')) => text.push('%'),
                Some((at, p)) => {
                    let placeholder =
                        Placeholder::from_char(p).ok_or(TemplateError::UnknownPlaceholder {
                            placeholder: p,
                            position: at,
                        })?;
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Value(placeholder));
                }
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(LineNameTemplate {
            source: source.to_owned(),
            pieces,
        })
    }

    /// The name of one line.
    pub fn render(&self, cx: &NameContext<'_>) -> String {
        let mut name = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => name.push_str(text),
                Piece::Value(p) => name.push_str(&value(*p, cx)),
            }
        }
        let trimmed = name.trim();
        if trimmed.is_empty() {
            cx.device.address.clone()
        } else {
            trimmed.to_owned()
        }
    }
}

fn value(placeholder: Placeholder, cx: &NameContext<'_>) -> String {
    let device = cx.device;
    let host = cx.pbx.host.clone().unwrap_or_default();
    let alias = device
        .alias
        .clone()
        .unwrap_or_else(|| device.address.clone());
    match placeholder {
        Placeholder::LongName => device
            .long_name
            .clone()
            .unwrap_or_else(|| device.name.clone()),
        Placeholder::DisplayName => device.name.clone(),
        Placeholder::Alias => alias,
        Placeholder::Extension | Placeholder::Address => device.address.clone(),
        Placeholder::NodeExtension => {
            format!(
                "{}{}",
                device.node_prefix.as_deref().unwrap_or(""),
                device.address
            )
        }
        Placeholder::Host => host,
        Placeholder::PortSuffix => match (cx.pbx.port, cx.pbx.default_port) {
            (Some(port), Some(default)) if port == default => String::new(),
            (Some(port), _) => format!(":{port}"),
            (None, _) => String::new(),
        },
        Placeholder::Port => cx.pbx.port.map(|p| p.to_string()).unwrap_or_default(),
        Placeholder::UserAtHost => {
            if host.is_empty() {
                alias
            } else {
                format!("{alias}@{host}")
            }
        }
        Placeholder::PbxName => cx.pbx.name.clone().unwrap_or_default(),
        Placeholder::Instance => cx.instance.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device {
            long_name: Some("Ada Lovelace (Sales)".into()),
            alias: Some("ada".into()),
            node_prefix: Some("7".into()),
            ..Device::new("dev-201", "201", "Ada Lovelace")
        }
    }

    fn pbx(port: u16) -> PbxIdentity {
        PbxIdentity {
            host: Some("pbx.example.com".into()),
            port: Some(port),
            default_port: Some(5038),
            name: Some("Asterisk 22".into()),
        }
    }

    fn render(template: &str, port: u16) -> String {
        let device = device();
        let pbx = pbx(port);
        let cx = NameContext {
            device: &device,
            pbx: &pbx,
            instance: "office",
        };
        LineNameTemplate::parse(template).unwrap().render(&cx)
    }

    #[test]
    fn every_placeholder() {
        let cases = [
            ("%c", "Ada Lovelace (Sales)"),
            ("%d", "Ada Lovelace"),
            ("%h", "ada"),
            ("%e", "201"),
            ("%E", "7201"),
            ("%N", "201"),
            ("%n", "pbx.example.com"),
            ("%n%p", "pbx.example.com"),
            ("%p", "201"),
            ("%P", "5038"),
            ("%u", "ada@pbx.example.com"),
            ("%x", "Asterisk 22"),
            ("%i", "office"),
            ("100%%", "100%"),
            ("%e - %d on %x%p", "201 - Ada Lovelace on Asterisk 22"),
        ];
        for (template, expected) in cases {
            assert_eq!(render(template, 5038), expected, "{template}");
        }
        assert_eq!(render("%n%p", 6000), "pbx.example.com:6000");
    }

    #[test]
    fn missing_values_fall_back() {
        let device = Device::new("k", "305", "Bob");
        let pbx = PbxIdentity::default();
        let cx = NameContext {
            device: &device,
            pbx: &pbx,
            instance: "i",
        };
        let render = |t: &str| LineNameTemplate::parse(t).unwrap().render(&cx);
        assert_eq!(render("%c"), "Bob");
        assert_eq!(render("%h"), "305");
        assert_eq!(render("%u"), "305");
        assert_eq!(render("%E"), "305");
        assert_eq!(
            render("%x"),
            "305",
            "an empty name falls back to the address"
        );
    }

    #[test]
    fn presets_and_errors() {
        assert_eq!(render("extension - name", 5038), "201 - Ada Lovelace");
        assert_eq!(render("name (extension)", 5038), "Ada Lovelace (201)");
        assert_eq!(
            LineNameTemplate::parse("%e / %q").unwrap_err(),
            TemplateError::UnknownPlaceholder {
                placeholder: 'q',
                position: 6
            }
        );
        assert_eq!(
            LineNameTemplate::parse("%e %").unwrap_err(),
            TemplateError::DanglingPercent { position: 4 }
        );
        assert_eq!(
            LineNameTemplate::parse("").unwrap_err(),
            TemplateError::Empty
        );
    }
}
