//! Reading and writing Microsoft's `tsecimp` XML, which assigns TAPI lines to Windows users.
//!
//! A file is one `<UserList>` of `<User>` elements. A user names exactly one `<DomainUser>`
//! (`DOMAIN\user`), optionally a `<FriendlyName>`, and optionally a `<LineList>` of `<Line>`s,
//! each identified by exactly one of `<Address>` (e.g. an extension) or `<PermanentID>` (the
//! line's permanent ID in decimal). `NoMerge="1"` on a user drops its current assignments first,
//! `Remove="1"` on a line revokes that line, and a user without `<LineList>` loses all lines.
//! Element names are case-sensitive and never prefixed. Microsoft's own examples write the two
//! flags unquoted (`<User NoMerge=1>`), so [`parse`] accepts exactly that; everything else must be
//! well-formed XML without a DOCTYPE. [`parse`] reports every problem it finds, with its position.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::ops::Range;

use quick_xml::XmlVersion;
use quick_xml::escape::resolve_xml_entity;
use quick_xml::events::attributes::AttrError;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::reader::Reader;

/// Larger files are rejected before parsing so that a bad upload cannot tie up the server.
pub const MAX_INPUT_BYTES: usize = 4 * 1024 * 1024;

/// Past this many problems the rest of the file is not examined: nobody reads further.
const MAX_PROBLEMS: usize = 1000;

/// A whole `tsecimp` file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Document {
    pub users: Vec<UserEntry>,
}

/// One `<User>`: the lines to assign to (or take from) one Windows account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserEntry {
    pub domain_user: String,
    pub friendly_name: Option<String>,
    pub no_merge: bool,
    /// None when the file has no `<LineList>`: all the user's lines are removed.
    pub lines: Option<Vec<LineEntry>>,
    /// Where `<User>` starts.
    pub position: Position,
}

/// One `<Line>` of a `<LineList>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineEntry {
    pub line: LineRef,
    pub remove: bool,
    /// Where `<Line>` starts.
    pub position: Position,
}

/// How a `<Line>` names its TAPI line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineRef {
    /// The line's address string, e.g. an extension.
    Address(String),
    /// The line's `dwPermanentLineID`.
    PermanentId(u32),
}

/// A place in the parsed text. Both numbers are 1-based; the column counts characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Default for Position {
    /// The start of the text, for entries built in code rather than parsed.
    fn default() -> Self {
        Position { line: 1, column: 1 }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// One problem found; displays like
/// `line 7, column 5: <Line> has both <Address> and <PermanentID>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{position}: {message}")]
pub struct Problem {
    pub position: Position,
    pub message: String,
}

/// Parses a `tsecimp` file.
///
/// # Errors
///
/// Every problem found, ordered by position. Reading stops at the first place where the text is
/// not well-formed XML, and after 1000 problems.
pub fn parse(text: &str) -> Result<Document, Vec<Problem>> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(vec![Problem {
            position: Position::default(),
            message: format!(
                "the file is {} bytes; at most {MAX_INPUT_BYTES} bytes (4 MiB) are accepted",
                text.len()
            ),
        }]);
    }
    // Editors hide the byte order mark, so columns are counted without it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (quoted, inserted) = quote_bare_flags(text);
    let locator = Locator::new(text, inserted);
    if let Some(problem) = illegal_character(text, &locator) {
        return Err(vec![problem]);
    }
    let mut parser = Parser::new(&quoted, locator);
    let outcome = parser.run();
    parser.finish(outcome)
}

/// Writes `document` as indented, well-formed XML with quoted attributes.
///
/// `NoMerge` and `Remove` appear only when true. Characters XML cannot carry are written as
/// U+FFFD, and [`parse`] trims the whitespace around values, so only such values change on a
/// round trip.
#[must_use]
pub fn export(document: &Document) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<UserList>\n");
    for user in &document.users {
        write_user(&mut out, user);
    }
    out.push_str("</UserList>\n");
    out
}

fn write_user(out: &mut String, user: &UserEntry) {
    out.push_str(if user.no_merge {
        "  <User NoMerge=\"1\">\n"
    } else {
        "  <User>\n"
    });
    write_user_field(out, "DomainUser", &user.domain_user);
    if let Some(name) = &user.friendly_name {
        write_user_field(out, "FriendlyName", name);
    }
    match user.lines.as_deref() {
        None => {}
        // An empty list must stay distinguishable from a missing one, which removes all lines.
        Some([]) => out.push_str("    <LineList/>\n"),
        Some(lines) => {
            out.push_str("    <LineList>\n");
            for line in lines {
                write_line(out, line);
            }
            out.push_str("    </LineList>\n");
        }
    }
    out.push_str("  </User>\n");
}

fn write_line(out: &mut String, line: &LineEntry) {
    out.push_str(if line.remove {
        "      <Line Remove=\"1\">"
    } else {
        "      <Line>"
    });
    match &line.line {
        LineRef::Address(address) => write_leaf(out, "Address", address),
        LineRef::PermanentId(id) => write_leaf(out, "PermanentID", &id.to_string()),
    }
    out.push_str("</Line>\n");
}

fn write_user_field(out: &mut String, name: &str, value: &str) {
    out.push_str("    ");
    write_leaf(out, name, value);
    out.push('\n');
}

fn write_leaf(out: &mut String, name: &str, value: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    escape_into(out, value);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // A literal CR would come back as LF: XML normalizes line ends.
            '\r' => out.push_str("&#13;"),
            c if !is_xml_char(c) => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

/// XML 1.0's `Char` production; anything else makes a document not well-formed.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

/// quick-xml does not check the characters of text and markup, so a pass over the input does.
fn illegal_character(text: &str, locator: &Locator) -> Option<Problem> {
    let (offset, c) = text.char_indices().find(|&(_, c)| !is_xml_char(c))?;
    Some(Problem {
        position: locator.original_position(offset),
        message: format!(
            "not well-formed XML: character U+{:04X} is not allowed",
            u32::from(c)
        ),
    })
}

/// Microsoft's documentation writes `<User NoMerge=1>` and `<Line Remove=1>`, and files copied from
/// it must load. Quotes are added around exactly those values; no newline is added, so lines stay
/// put, and the returned insertion offsets let [`Locator`] map columns back to the original.
fn quote_bare_flags(text: &str) -> (Cow<'_, str>, Vec<usize>) {
    let values = bare_flag_values(text);
    if values.is_empty() {
        return (Cow::Borrowed(text), Vec::new());
    }
    let mut quoted = String::with_capacity(text.len() + 2 * values.len());
    let mut inserted = Vec::with_capacity(2 * values.len());
    let mut copied = 0;
    // The ranges start and end next to ASCII bytes, so slicing at them cannot split a character.
    for value in values {
        quoted.push_str(&text[copied..value.start]);
        inserted.push(quoted.len());
        quoted.push('"');
        quoted.push_str(&text[value.clone()]);
        inserted.push(quoted.len());
        quoted.push('"');
        copied = value.end;
    }
    quoted.push_str(&text[copied..]);
    (Cow::Owned(quoted), inserted)
}

/// Byte ranges of unquoted `NoMerge` values on `<User>` and `Remove` values on `<Line>` tags.
fn bare_flag_values(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(open) = find(bytes, at, b"<") {
        at = skip_unparsed(bytes, open).unwrap_or_else(|| scan_tag(bytes, open, &mut found));
    }
    found
}

/// Comments, CDATA sections, processing instructions and declarations may hold tag-like text
/// that must not be touched. Returns the offset after such a section.
fn skip_unparsed(bytes: &[u8], open: usize) -> Option<usize> {
    const SECTIONS: [(&[u8], &[u8]); 4] = [
        (b"<!--", b"-->"),
        (b"<![CDATA[", b"]]>"),
        (b"<?", b"?>"),
        (b"<!", b">"),
    ];
    let rest = bytes.get(open..)?;
    let (start, end) = SECTIONS.iter().find(|(start, _)| rest.starts_with(start))?;
    Some(find(bytes, open + start.len(), end).map_or(bytes.len(), |at| at + end.len()))
}

/// Scans the tag starting at `open`, honouring quoted values, and returns the offset after it.
fn scan_tag(bytes: &[u8], open: usize, found: &mut Vec<Range<usize>>) -> usize {
    let name_start = open + 1;
    let name_end = bytes
        .get(name_start..)
        .and_then(|rest| {
            rest.iter()
                .position(|&b| b == b'/' || b == b'>' || is_xml_space(b))
        })
        .map_or(bytes.len(), |length| name_start + length);
    let flag: Option<&[u8]> = match bytes.get(name_start..name_end) {
        Some(b"User") => Some(b"NoMerge"),
        Some(b"Line") => Some(b"Remove"),
        _ => None,
    };
    let mut at = name_end;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'>' => return at + 1,
            b'"' | b'\'' => at = find(bytes, at + 1, &[byte]).map_or(bytes.len(), |end| end + 1),
            _ if is_xml_space(byte) => {
                match flag.and_then(|name| bare_value(bytes, at + 1, name)) {
                    Some(value) => {
                        at = value.end;
                        found.push(value);
                    }
                    None => at += 1,
                }
            }
            _ => at += 1,
        }
    }
    bytes.len()
}

/// The range of `value` if `name = value` starts at `at` with `value` alphanumeric and unquoted.
fn bare_value(bytes: &[u8], at: usize, name: &[u8]) -> Option<Range<usize>> {
    if !bytes.get(at..)?.starts_with(name) {
        return None;
    }
    let equals = skip_space(bytes, at + name.len());
    if bytes.get(equals) != Some(&b'=') {
        return None;
    }
    let start = skip_space(bytes, equals + 1);
    let length = bytes
        .get(start..)?
        .iter()
        .take_while(|byte| byte.is_ascii_alphanumeric())
        .count();
    let end = start + length;
    let ends_cleanly =
        matches!(bytes.get(end), Some(&b) if b == b'>' || b == b'/' || is_xml_space(b));
    (length > 0 && ends_cleanly).then_some(start..end)
}

fn skip_space(bytes: &[u8], from: usize) -> usize {
    from + bytes.get(from..).map_or(0, |rest| {
        rest.iter().take_while(|&&b| is_xml_space(b)).count()
    })
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|at| at + from)
}

fn is_xml_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

/// Turns offsets into the text the reader sees back into positions in the caller's text.
struct Locator<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
    /// Offsets in the reader's text of the quotes added by [`quote_bare_flags`], ascending.
    inserted: Vec<usize>,
    /// The last offset located and its position. Offsets mostly arrive in ascending order, and
    /// counting on from here keeps a file written on one long line from costing quadratic time.
    last: Cell<(usize, Position)>,
}

impl<'a> Locator<'a> {
    fn new(text: &'a str, inserted: Vec<usize>) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        Locator {
            text,
            line_starts,
            inserted,
            last: Cell::new((0, Position::default())),
        }
    }

    /// Position of an offset into the reader's text.
    fn position(&self, offset: u64) -> Position {
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        let shift = self.inserted.partition_point(|&at| at < offset);
        self.original_position(offset.saturating_sub(shift))
    }

    fn original_position(&self, offset: usize) -> Position {
        let offset = offset.min(self.text.len());
        // line_starts begins with 0, so at least one start precedes any offset.
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let (last_offset, last) = self.last.get();
        let (from, column) = if last.line == line && last_offset <= offset {
            (last_offset, last.column)
        } else {
            let line_start = self.line_starts.get(line.saturating_sub(1));
            (line_start.copied().unwrap_or(0), 1)
        };
        let characters = self.text.as_bytes().get(from..offset).map_or(0, |bytes| {
            // Counts the bytes that start a character, so any offset is safe.
            bytes.iter().filter(|&&b| b & 0xc0 != 0x80).count()
        });
        let position = Position {
            line,
            column: column + characters,
        };
        self.last.set((offset, position));
        position
    }
}

/// A value read from a text-only element, with where that element starts.
struct Field {
    value: String,
    position: Position,
}

struct UserDraft {
    position: Position,
    no_merge: bool,
    domain_user: Option<Field>,
    friendly_name: Option<Field>,
    lines: Option<Vec<LineEntry>>,
}

struct LineDraft {
    position: Position,
    remove: bool,
    address: Option<Field>,
    permanent_id: Option<Field>,
}

struct LineListDraft {
    position: Position,
    lines: Vec<LineEntry>,
}

/// What is known about one open element of the format. Elements outside the format are not
/// given frames: they are reported once and their content is skipped.
enum Frame {
    UserList,
    User(UserDraft),
    LineList(LineListDraft),
    Line(LineDraft),
    DomainUser(Field),
    FriendlyName(Field),
    Address(Field),
    PermanentId(Field),
}

impl Frame {
    fn name(&self) -> &'static str {
        match self {
            Frame::UserList => "UserList",
            Frame::User(_) => "User",
            Frame::LineList(_) => "LineList",
            Frame::Line(_) => "Line",
            Frame::DomainUser(_) => "DomainUser",
            Frame::FriendlyName(_) => "FriendlyName",
            Frame::Address(_) => "Address",
            Frame::PermanentId(_) => "PermanentID",
        }
    }

    /// The frame for element `name` inside `parent` (None: at the top), if the format allows it.
    fn child(parent: Option<&Frame>, name: &str, position: Position) -> Option<Frame> {
        let field = || Field {
            value: String::new(),
            position,
        };
        Some(match (parent, name) {
            (None, "UserList") => Frame::UserList,
            (Some(Frame::UserList), "User") => Frame::User(UserDraft {
                position,
                no_merge: false,
                domain_user: None,
                friendly_name: None,
                lines: None,
            }),
            (Some(Frame::User(_)), "DomainUser") => Frame::DomainUser(field()),
            (Some(Frame::User(_)), "FriendlyName") => Frame::FriendlyName(field()),
            (Some(Frame::User(_)), "LineList") => Frame::LineList(LineListDraft {
                position,
                lines: Vec::new(),
            }),
            (Some(Frame::LineList(_)), "Line") => Frame::Line(LineDraft {
                position,
                remove: false,
                address: None,
                permanent_id: None,
            }),
            (Some(Frame::Line(_)), "Address") => Frame::Address(field()),
            (Some(Frame::Line(_)), "PermanentID") => Frame::PermanentId(field()),
            _ => return None,
        })
    }

    fn text_mut(&mut self) -> Option<&mut String> {
        match self {
            Frame::DomainUser(field)
            | Frame::FriendlyName(field)
            | Frame::Address(field)
            | Frame::PermanentId(field) => Some(&mut field.value),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    /// Drops problems past [`MAX_PROBLEMS`]; one tag alone can hold a million bad attributes.
    fn report(&mut self, position: Position, message: impl Into<String>) {
        if !self.is_full() {
            self.0.push(Problem {
                position,
                message: message.into(),
            });
        }
    }

    fn is_full(&self) -> bool {
        self.0.len() >= MAX_PROBLEMS
    }
}

/// Text between two tags of an element that should hold none, gathered so that one stray run
/// split by references or CDATA is reported once.
#[derive(Default)]
struct TextRun {
    text: String,
    /// Where the first non-whitespace character is; None while there is only whitespace.
    visible_at: Option<Position>,
}

/// Checks the format while reading, so memory stays small however deeply unknown elements nest.
struct Parser<'a> {
    reader: Reader<&'a [u8]>,
    locator: Locator<'a>,
    frames: Vec<Frame>,
    /// How many elements deep the parser is inside an element that was reported as unknown.
    skipped_depth: usize,
    root_seen: bool,
    stray_text: Option<TextRun>,
    /// Lower-cased domain users seen so far, with where their `<DomainUser>` starts.
    seen_users: HashMap<String, Position>,
    document: Document,
    problems: Problems,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, locator: Locator<'a>) -> Self {
        let mut reader = Reader::from_str(text);
        reader.config_mut().check_comments = true;
        Parser {
            reader,
            locator,
            frames: Vec::new(),
            skipped_depth: 0,
            root_seen: false,
            stray_text: None,
            seen_users: HashMap::new(),
            document: Document::default(),
            problems: Problems::default(),
        }
    }

    /// Reads to the end; an error is a problem after which the rest cannot be read.
    fn run(&mut self) -> Result<(), Problem> {
        loop {
            let offset = self.reader.buffer_position();
            if self.problems.is_full() {
                return Err(self.fatal(offset, "too many problems; the rest was not checked"));
            }
            let event = match self.reader.read_event() {
                Ok(event) => event,
                Err(error) => {
                    let at = self.reader.error_position();
                    return Err(self.fatal(at, format!("not well-formed XML: {}", reason(&error))));
                }
            };
            match event {
                Event::Start(start) => self.open(&start, offset)?,
                Event::Empty(start) => {
                    self.open(&start, offset)?;
                    self.close();
                }
                Event::End(_) => self.close(),
                Event::Text(text) => {
                    let content = text.xml10_content().map_err(|e| self.bad_text(offset, e))?;
                    let visible_at = first_visible(&text, offset);
                    self.add_text(&content, visible_at);
                }
                Event::CData(data) => {
                    let content = data.xml10_content().map_err(|e| self.bad_text(offset, e))?;
                    let visible_at = first_visible(&data, offset + b"<![CDATA[".len() as u64);
                    self.add_text(&content, visible_at);
                }
                Event::GeneralRef(reference) => {
                    let c = self.resolve(&reference, offset)?;
                    let visible_at = (!c.is_whitespace()).then_some(offset);
                    self.add_text(c.encode_utf8(&mut [0; 4]), visible_at);
                }
                Event::Decl(_) if offset > 0 => {
                    return Err(self.fatal(
                        offset,
                        "not well-formed XML: the XML declaration must come first",
                    ));
                }
                Event::DocType(_) => {
                    return Err(self.fatal(offset, "a DOCTYPE is not allowed in a tsecimp file"));
                }
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
                Event::Eof => return self.end_of_input(offset),
            }
        }
    }

    fn finish(mut self, outcome: Result<(), Problem>) -> Result<Document, Vec<Problem>> {
        if let Err(problem) = outcome {
            self.problems.0.push(problem);
        }
        let mut problems = self.problems.0;
        if problems.is_empty() {
            return Ok(self.document);
        }
        // Whole elements are checked when they close, after their content: sort to read in order.
        problems.sort_by_key(|problem| problem.position);
        Err(problems)
    }

    fn fatal(&self, offset: u64, message: impl Into<String>) -> Problem {
        Problem {
            position: self.locator.position(offset),
            message: message.into(),
        }
    }

    fn bad_text(&self, offset: u64, error: impl fmt::Display) -> Problem {
        self.fatal(offset, format!("not well-formed XML: {error}"))
    }

    /// Only the predefined entities exist: a DOCTYPE, which could declare others, is refused.
    fn resolve(&self, reference: &BytesRef, offset: u64) -> Result<char, Problem> {
        let name = String::from_utf8_lossy(reference);
        let resolved = match reference.resolve_char_ref() {
            Ok(Some(c)) => Some(c).filter(|&c| is_xml_char(c)),
            Ok(None) => resolve_xml_entity(&name).and_then(|text| text.chars().next()),
            Err(_) => None,
        };
        resolved.ok_or_else(|| {
            self.fatal(
                offset,
                format!("not well-formed XML: unknown or invalid reference &{name};"),
            )
        })
    }

    fn end_of_input(&mut self, offset: u64) -> Result<(), Problem> {
        self.flush_stray_text();
        if !self.frames.is_empty() || self.skipped_depth > 0 {
            return Err(self.fatal(
                offset,
                "not well-formed XML: the file ends before all elements are closed",
            ));
        }
        if !self.root_seen {
            return Err(self.fatal(offset, "the file has no <UserList> element"));
        }
        Ok(())
    }

    fn open(&mut self, start: &BytesStart, offset: u64) -> Result<(), Problem> {
        self.flush_stray_text();
        // Attributes are read even inside skipped elements: they too must be well-formed.
        let attributes = self.read_attributes(start, offset)?;
        if self.skipped_depth > 0 {
            self.skipped_depth += 1;
            return Ok(());
        }
        let name = String::from_utf8_lossy(start.name().into_inner()).into_owned();
        let position = self.locator.position(offset);
        let parent = self.frames.last();
        if parent.is_none() && self.root_seen {
            return Err(self.fatal(
                offset,
                format!("not well-formed XML: <{name}> follows the root element"),
            ));
        }
        self.root_seen = true;
        let Some(mut frame) = Frame::child(parent, &name, position) else {
            let message = match parent {
                None => format!("the root element is <{name}>; a tsecimp file has <UserList>"),
                Some(parent) => format!("unknown element <{name}> in <{}>", parent.name()),
            };
            self.problems.report(position, message);
            self.skipped_depth = 1;
            return Ok(());
        };
        self.apply_attributes(&mut frame, attributes, position);
        self.frames.push(frame);
        Ok(())
    }

    fn read_attributes(
        &self,
        start: &BytesStart,
        offset: u64,
    ) -> Result<Vec<(String, String)>, Problem> {
        let mut attributes = Vec::new();
        for attribute in start.attributes() {
            let attribute = attribute.map_err(|error| self.attribute_error(&error, offset))?;
            let key = String::from_utf8_lossy(attribute.key.into_inner()).into_owned();
            let value = attribute
                .normalized_value_with(XmlVersion::Implicit1_0, 1, resolve_xml_entity)
                .map_err(|error| {
                    self.fatal(
                        offset,
                        format!("not well-formed XML: attribute {key}: {error}"),
                    )
                })?;
            attributes.push((key, value.into_owned()));
        }
        Ok(attributes)
    }

    fn attribute_error(&self, error: &AttrError, tag_offset: u64) -> Problem {
        let (at, message) = match *error {
            AttrError::ExpectedEq(at) => (at, "an attribute name must be followed by ="),
            AttrError::ExpectedValue(at) => (at, "= must be followed by a quoted value"),
            AttrError::UnquotedValue(at) => (at, "attribute values must be quoted"),
            AttrError::ExpectedQuote(at, _) => (at, "an attribute value lacks its closing quote"),
            AttrError::Duplicated(at, _) => (at, "the same attribute is given twice"),
        };
        // quick-xml counts from the byte after `<`.
        let offset = tag_offset + 1 + at as u64;
        self.fatal(offset, format!("not well-formed XML: {message}"))
    }

    fn apply_attributes(
        &mut self,
        frame: &mut Frame,
        attributes: Vec<(String, String)>,
        position: Position,
    ) {
        let element = frame.name();
        for (key, value) in attributes {
            let flag = match (&mut *frame, key.as_str()) {
                (Frame::User(user), "NoMerge") => &mut user.no_merge,
                (Frame::Line(line), "Remove") => &mut line.remove,
                _ => {
                    let message = format!("unknown attribute {key} on <{element}>");
                    self.problems.report(position, message);
                    continue;
                }
            };
            match parse_flag(&value) {
                Some(set) => *flag = set,
                None => self.problems.report(
                    position,
                    format!("{key}=\"{value}\" on <{element}> must be 1, 0, true or false"),
                ),
            }
        }
    }

    fn add_text(&mut self, content: &str, visible_at: Option<u64>) {
        if self.skipped_depth > 0 {
            return;
        }
        if let Some(text) = self.frames.last_mut().and_then(Frame::text_mut) {
            text.push_str(content);
            return;
        }
        let visible_at = visible_at.map(|offset| self.locator.position(offset));
        let run = self.stray_text.get_or_insert_with(TextRun::default);
        run.text.push_str(content);
        run.visible_at = run.visible_at.or(visible_at);
    }

    fn flush_stray_text(&mut self) {
        let Some(TextRun {
            text,
            visible_at: Some(position),
        }) = self.stray_text.take()
        else {
            return;
        };
        let place = match self.frames.last() {
            None => "outside the root element".to_owned(),
            Some(frame) => format!("in <{}>", frame.name()),
        };
        let message = format!("unexpected text \"{}\" {place}", excerpt(text.trim()));
        self.problems.report(position, message);
    }

    fn close(&mut self) {
        self.flush_stray_text();
        if self.skipped_depth > 0 {
            self.skipped_depth -= 1;
            return;
        }
        let Some(frame) = self.frames.pop() else {
            return;
        };
        if let Frame::User(user) = frame {
            self.add_user(user);
            return;
        }
        let child = frame.name();
        // Closing <UserList> leaves no parent, and nothing to do.
        let Some(parent) = self.frames.last_mut() else {
            return;
        };
        let parent_name = parent.name();
        // Frames are only ever pushed onto the parent the format puts them in, see Frame::child.
        let repeated_at = match (frame, parent) {
            (Frame::DomainUser(field), Frame::User(user)) => {
                store_once(&mut user.domain_user, field)
            }
            (Frame::FriendlyName(field), Frame::User(user)) => {
                store_once(&mut user.friendly_name, field)
            }
            (Frame::Address(field), Frame::Line(line)) => store_once(&mut line.address, field),
            (Frame::PermanentId(field), Frame::Line(line)) => {
                store_once(&mut line.permanent_id, field)
            }
            (Frame::LineList(list), Frame::User(user)) if user.lines.is_some() => {
                Some(list.position)
            }
            (Frame::LineList(list), Frame::User(user)) => {
                user.lines = Some(list.lines);
                None
            }
            (Frame::Line(line), Frame::LineList(list)) => {
                list.lines.extend(finish_line(line, &mut self.problems));
                None
            }
            _ => None,
        };
        if let Some(position) = repeated_at {
            let message = format!("<{parent_name}> has more than one <{child}>");
            self.problems.report(position, message);
        }
    }

    fn add_user(&mut self, draft: UserDraft) {
        let Some((user, domain_user_at)) = finish_user(draft, &mut self.problems) else {
            return;
        };
        match self.seen_users.entry(user.domain_user.to_lowercase()) {
            Entry::Occupied(first) => {
                let message = format!(
                    "<DomainUser> {} is listed twice (first at {})",
                    user.domain_user,
                    first.get()
                );
                self.problems.report(domain_user_at, message);
            }
            Entry::Vacant(slot) => {
                slot.insert(domain_user_at);
            }
        }
        self.document.users.push(user);
    }
}

/// quick-xml's message without its category prefix, which "not well-formed XML" already says.
fn reason(error: &quick_xml::Error) -> String {
    match error {
        quick_xml::Error::Syntax(error) => error.to_string(),
        quick_xml::Error::IllFormed(error) => error.to_string(),
        error => error.to_string(),
    }
}

/// Offset of the first non-whitespace byte of `raw`, which starts at `base`.
fn first_visible(raw: &[u8], base: u64) -> Option<u64> {
    let at = raw.iter().position(|&b| !is_xml_space(b))?;
    Some(base + at as u64)
}

fn excerpt(text: &str) -> String {
    const LONGEST: usize = 30;
    match text.char_indices().nth(LONGEST) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Keeps the first of an element that may appear once; returns where a repeat starts.
fn store_once(slot: &mut Option<Field>, field: Field) -> Option<Position> {
    if slot.is_some() {
        return Some(field.position);
    }
    *slot = Some(Field {
        value: field.value.trim().to_owned(),
        position: field.position,
    });
    None
}

fn parse_flag(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// The finished user and where its `<DomainUser>` starts, or None after reporting why not.
fn finish_user(draft: UserDraft, problems: &mut Problems) -> Option<(UserEntry, Position)> {
    let Some(domain_user) = draft.domain_user else {
        problems.report(draft.position, "<User> has no <DomainUser>");
        return None;
    };
    if domain_user.value.is_empty() {
        problems.report(domain_user.position, "<DomainUser> is empty");
        return None;
    }
    let user = UserEntry {
        domain_user: domain_user.value,
        friendly_name: draft.friendly_name.map(|field| field.value),
        no_merge: draft.no_merge,
        lines: draft.lines,
        position: draft.position,
    };
    Some((user, domain_user.position))
}

fn finish_line(draft: LineDraft, problems: &mut Problems) -> Option<LineEntry> {
    let line = match (draft.address, draft.permanent_id) {
        (Some(_), Some(_)) => {
            problems.report(
                draft.position,
                "<Line> has both <Address> and <PermanentID>",
            );
            None
        }
        (None, None) => {
            problems.report(
                draft.position,
                "<Line> has neither <Address> nor <PermanentID>",
            );
            None
        }
        (Some(address), None) if address.value.is_empty() => {
            problems.report(address.position, "<Address> is empty");
            None
        }
        (Some(address), None) => Some(LineRef::Address(address.value)),
        (None, Some(id)) => parse_permanent_id(&id, problems).map(LineRef::PermanentId),
    }?;
    Some(LineEntry {
        line,
        remove: draft.remove,
        position: draft.position,
    })
}

fn parse_permanent_id(field: &Field, problems: &mut Problems) -> Option<u32> {
    // `u32::from_str` would also take a sign, which is not decimal notation for an ID.
    let digits_only = !field.value.is_empty() && field.value.bytes().all(|b| b.is_ascii_digit());
    let id = field.value.parse().ok().filter(|_| digits_only);
    if id.is_none() {
        problems.report(
            field.position,
            format!(
                "<PermanentID> \"{}\" is not a decimal number from 0 to {}",
                excerpt(&field.value),
                u32::MAX
            ),
        );
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Microsoft's sample, with the unquoted flags its documentation uses.
    const MICROSOFT_SAMPLE: &str = r"<UserList>
  <User NoMerge=1>
    <DomainUser>domain1\user1</DomainUser>
    <FriendlyName>User1</FriendlyName>
    <LineList>
      <Line><PermanentID>1000</PermanentID></Line>
      <Line Remove=1><Address>88888</Address></Line>
    </LineList>
  </User>
</UserList>
";

    fn at(line: usize, column: usize) -> Position {
        Position { line, column }
    }

    fn without_positions(mut document: Document) -> Document {
        for user in &mut document.users {
            user.position = Position::default();
            for line in user.lines.iter_mut().flatten() {
                line.position = Position::default();
            }
        }
        document
    }

    fn problems(text: &str) -> Vec<Problem> {
        match parse(text) {
            Ok(document) => panic!("expected problems, parsed {document:?}"),
            Err(problems) => problems,
        }
    }

    fn only_problem(text: &str) -> Problem {
        let mut found = problems(text);
        assert_eq!(found.len(), 1, "{found:#?}");
        found.remove(0)
    }

    fn user_list(body: &str) -> String {
        format!("<UserList>\n{body}\n</UserList>\n")
    }

    #[test]
    fn microsoft_sample_parses() {
        let expected = Document {
            users: vec![UserEntry {
                domain_user: r"domain1\user1".to_owned(),
                friendly_name: Some("User1".to_owned()),
                no_merge: true,
                lines: Some(vec![
                    LineEntry {
                        line: LineRef::PermanentId(1000),
                        remove: false,
                        position: at(6, 7),
                    },
                    LineEntry {
                        line: LineRef::Address("88888".to_owned()),
                        remove: true,
                        position: at(7, 7),
                    },
                ]),
                position: at(2, 3),
            }],
        };
        assert_eq!(parse(MICROSOFT_SAMPLE), Ok(expected));
    }

    #[test]
    fn quoted_sample_parses_like_unquoted_one() {
        let quoted = MICROSOFT_SAMPLE
            .replace("NoMerge=1", "NoMerge=\"1\"")
            .replace("Remove=1", "Remove='1'");
        assert_eq!(parse(&quoted), parse(MICROSOFT_SAMPLE));
    }

    #[test]
    fn unquoted_flags_keep_original_columns() {
        let text = user_list(
            "  <User NoMerge=1><DomainUser>d\\u</DomainUser><LineList>\n    <Line Remove=1><Address></Address></Line></LineList></User>",
        );
        let problem = only_problem(&text);
        assert_eq!(problem.position, at(3, 20));
        assert_eq!(problem.message, "<Address> is empty");
    }

    #[test]
    fn only_the_two_flags_may_be_unquoted() {
        let problem = only_problem(&user_list(
            "  <User Foo=1><DomainUser>d\\u</DomainUser></User>",
        ));
        assert_eq!(problem.position, at(2, 13));
        assert!(problem.message.contains("must be quoted"), "{problem}");
        let problem = only_problem(&user_list(
            "  <LineList NoMerge=1><DomainUser>d\\u</DomainUser></LineList>",
        ));
        assert!(problem.message.contains("must be quoted"), "{problem}");
    }

    #[test]
    fn flag_look_alikes_in_text_and_comments_are_left_alone() {
        let text = user_list(
            "<!-- <User NoMerge=1> -->\n<User><DomainUser>d\\u</DomainUser><FriendlyName><![CDATA[<Line Remove=1>]]> Remove=1</FriendlyName></User>",
        );
        let document = parse(&text).expect("valid");
        assert_eq!(
            document.users[0].friendly_name.as_deref(),
            Some("<Line Remove=1> Remove=1")
        );
        assert!(!document.users[0].no_merge);
    }

    #[test]
    fn flag_values_are_case_insensitive_words_or_digits() {
        let text = user_list(
            r#"<User NoMerge="TRUE"><DomainUser>d\a</DomainUser></User>
<User NoMerge="false"><DomainUser>d\b</DomainUser></User>
<User NoMerge=0><DomainUser>d\c</DomainUser><LineList><Line Remove="True"><PermanentID>0</PermanentID></Line></LineList></User>"#,
        );
        let document = parse(&text).expect("valid");
        let flags: Vec<bool> = document.users.iter().map(|user| user.no_merge).collect();
        assert_eq!(flags, [true, false, false]);
        let lines = document.users[2].lines.as_deref().expect("has lines");
        assert!(lines[0].remove);
    }

    #[test]
    fn missing_and_empty_line_lists_differ() {
        let text = user_list(
            "<User><DomainUser>d\\a</DomainUser></User><User><DomainUser>d\\b</DomainUser><LineList/></User>",
        );
        let document = parse(&text).expect("valid");
        assert_eq!(document.users[0].lines, None);
        assert_eq!(document.users[1].lines, Some(Vec::new()));
    }

    #[test]
    fn text_is_trimmed_and_references_resolved() {
        let text = user_list(
            "<User><DomainUser>\n  d\\u &#x41;&amp;&lt;T&gt; </DomainUser><FriendlyName> J&#252;rgen &apos;&quot; </FriendlyName></User>",
        );
        let user = &parse(&text).expect("valid").users[0];
        assert_eq!(user.domain_user, "d\\u A&<T>");
        assert_eq!(user.friendly_name.as_deref(), Some("Jürgen '\""));
    }

    #[test]
    fn byte_order_mark_and_declaration_are_accepted() {
        let text = format!(
            "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}",
            user_list("<User><DomainUser>d\\u</DomainUser></User>")
        );
        assert_eq!(parse(&text).expect("valid").users[0].position, at(3, 1));
    }

    /// Several users, both kinds of line, flags, a missing and an empty LineList, and text that
    /// needs escaping.
    fn rich_document() -> Document {
        Document {
            users: vec![
                UserEntry {
                    domain_user: r"corp\jürgen".to_owned(),
                    friendly_name: Some(r#"Jürgen & <Söhne> "quoted" 'single'"#.to_owned()),
                    no_merge: true,
                    lines: Some(vec![
                        LineEntry {
                            line: LineRef::Address("100".to_owned()),
                            remove: false,
                            position: Position::default(),
                        },
                        LineEntry {
                            line: LineRef::PermanentId(u32::MAX),
                            remove: true,
                            position: Position::default(),
                        },
                        LineEntry {
                            line: LineRef::Address("a&b<c>\"d\"".to_owned()),
                            remove: true,
                            position: Position::default(),
                        },
                    ]),
                    position: Position::default(),
                },
                UserEntry {
                    domain_user: r"corp\bob".to_owned(),
                    ..UserEntry::default()
                },
                UserEntry {
                    domain_user: r"corp\eve".to_owned(),
                    friendly_name: Some("Eve\r\nsecond line".to_owned()),
                    lines: Some(Vec::new()),
                    ..UserEntry::default()
                },
            ],
        }
    }

    #[test]
    fn export_then_parse_gives_the_same_document() {
        let document = rich_document();
        let text = export(&document);
        assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<UserList>\n"));
        assert_eq!(text.matches("NoMerge=\"1\"").count(), 1);
        assert_eq!(text.matches("Remove=\"1\"").count(), 2);
        assert!(!text.contains("=\"0\""), "{text}");
        assert!(text.contains("Jürgen &amp; &lt;Söhne&gt; &quot;quoted&quot; &apos;single&apos;"));
        let parsed = parse(&text).unwrap_or_else(|problems| panic!("{text}\n{problems:#?}"));
        assert_eq!(without_positions(parsed), document);
    }

    #[test]
    fn export_of_an_empty_document_parses_back() {
        let text = export(&Document::default());
        assert_eq!(parse(&text), Ok(Document::default()));
    }

    #[test]
    fn export_replaces_characters_xml_cannot_carry() {
        let document = Document {
            users: vec![UserEntry {
                domain_user: "d\\bell\u{7}".to_owned(),
                ..UserEntry::default()
            }],
        };
        let parsed = parse(&export(&document)).expect("export is well-formed");
        assert_eq!(parsed.users[0].domain_user, "d\\bell\u{fffd}");
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = r#"<UserList>
  <User NoMerge="maybe">
    <DomainUser>corp\alice</DomainUser>
    <LineList>
      <Line><Address>100</Address><PermanentID>7</PermanentID></Line>
      <Line><PermanentID>12x</PermanentID></Line>
      <Line Colour="red"><Address>  </Address></Line>
      <Line/>
    </LineList>
    <Phone>5</Phone>
  </User>
  <User>
    <FriendlyName>No account</FriendlyName>
  </User>
  <User>
    <DomainUser>CORP\Alice</DomainUser>
    <FriendlyName>a</FriendlyName>
    <FriendlyName>b</FriendlyName>
  </User>
  <user><DomainUser>x\y</DomainUser></user>
  <User>stray<DomainUser>x\z</DomainUser><LineList/><LineList/><DomainUser>x\w</DomainUser></User>
  <User><DomainUser/><LineList><Line><PermanentID>4294967296</PermanentID></Line></LineList></User>
</UserList>
"#;
        let found = problems(text);
        let summary: Vec<(usize, &str)> = found
            .iter()
            .map(|problem| (problem.position.line, problem.message.as_str()))
            .collect();
        let expected: [(usize, &[&str]); 15] = [
            (2, &["NoMerge", "maybe"]),
            (5, &["both", "<Address>", "<PermanentID>"]),
            (6, &["PermanentID", "\"12x\""]),
            (7, &["unknown attribute", "Colour", "<Line>"]),
            (7, &["<Address>", "empty"]),
            (8, &["neither"]),
            (10, &["unknown element", "<Phone>", "<User>"]),
            (12, &["<User>", "no <DomainUser>"]),
            (16, &["CORP\\Alice", "twice", "line 3"]),
            (18, &["more than one <FriendlyName>"]),
            (20, &["unknown element", "<user>", "<UserList>"]),
            (21, &["unexpected text", "stray", "<User>"]),
            (21, &["more than one <LineList>"]),
            (21, &["more than one <DomainUser>"]),
            (22, &["<DomainUser>", "empty"]),
        ];
        let lines: Vec<usize> = summary.iter().map(|(line, _)| *line).collect();
        let expected_lines: Vec<usize> = expected.iter().map(|(line, _)| *line).collect();
        // The overflowing PermanentID on line 22 is one more.
        assert_eq!(lines, [expected_lines, vec![22]].concat(), "{found:#?}");
        for ((_, message), (_, words)) in summary.iter().zip(&expected) {
            for word in *words {
                assert!(message.contains(word), "{message:?} lacks {word:?}");
            }
        }
        assert!(summary[15].1.contains("\"4294967296\""), "{found:#?}");
        assert_eq!(found[1].position, at(5, 7));
        assert_eq!(found[4].position, at(7, 26));
        assert_eq!(
            found[1].to_string(),
            "line 5, column 7: <Line> has both <Address> and <PermanentID>"
        );
    }

    #[test]
    fn not_well_formed_xml_stops_at_the_error() {
        let text = "<UserList>\n  <User>\n    <Phone/>\n  </Usr>\n  <Bogus/>\n</UserList>";
        let found = problems(text);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_eq!(found[0].position, at(3, 5));
        assert!(found[0].message.contains("<Phone>"));
        assert_eq!(found[1].position, at(4, 3));
        assert!(
            found[1].message.starts_with("not well-formed XML"),
            "{}",
            found[1]
        );
    }

    #[test]
    fn truncated_file_is_not_well_formed() {
        let problem = only_problem("<UserList>\n<User><DomainUser>d\\u</DomainUser>");
        assert!(problem.message.contains("ends before"), "{problem}");
        assert_eq!(problem.position.line, 2);
    }

    #[test]
    fn empty_input_is_rejected() {
        for text in ["", "  \n", "<!-- nothing -->"] {
            let problem = only_problem(text);
            assert!(problem.message.contains("no <UserList>"), "{problem}");
        }
        assert_eq!(only_problem("").position, at(1, 1));
    }

    #[test]
    fn wrong_root_and_second_root_are_rejected() {
        let problem = only_problem("<Users><User/></Users>");
        assert_eq!(problem.position, at(1, 1));
        assert!(
            problem.message.contains("root element is <Users>"),
            "{problem}"
        );
        let problem = only_problem("<UserList/>\n<UserList/>");
        assert_eq!(problem.position, at(2, 1));
        assert!(problem.message.contains("follows the root"), "{problem}");
    }

    #[test]
    fn names_are_case_sensitive_and_unprefixed() {
        let text = user_list(
            "<User><domainuser>d\\u</domainuser><t:DomainUser xmlns:t=\"x\">d\\u</t:DomainUser></User>",
        );
        let messages: Vec<String> = problems(&text).into_iter().map(|p| p.message).collect();
        assert_eq!(
            messages,
            [
                "<User> has no <DomainUser>",
                "unknown element <domainuser> in <User>",
                "unknown element <t:DomainUser> in <User>",
            ]
        );
    }

    #[test]
    fn text_outside_the_root_is_reported() {
        let found = problems("hello\n<UserList/>\nbye &amp; more");
        let lines: Vec<usize> = found.iter().map(|p| p.position.line).collect();
        assert_eq!(lines, [1, 3], "{found:#?}");
        assert!(found[1].message.contains("bye & more"), "{}", found[1]);
        assert!(found.iter().all(|p| p.message.contains("outside the root")));
    }

    #[test]
    fn doctype_is_rejected() {
        let text = "<!DOCTYPE UserList [<!ENTITY u \"d\\u\">]>\n<UserList><User><DomainUser>&u;</DomainUser></User></UserList>";
        let problem = only_problem(text);
        assert_eq!(problem.position, at(1, 1));
        assert!(problem.message.contains("DOCTYPE"), "{problem}");
    }

    #[test]
    fn unknown_entities_and_control_characters_are_rejected() {
        let problem = only_problem(&user_list("<User><DomainUser>&u;</DomainUser></User>"));
        assert!(problem.message.contains("&u;"), "{problem}");
        let problem = only_problem(&user_list("<User><DomainUser>&#1;</DomainUser></User>"));
        assert!(problem.message.contains("&#1;"), "{problem}");
        let problem = only_problem(&user_list("<User><DomainUser>a\u{1}</DomainUser></User>"));
        assert_eq!(problem.position, at(2, 20));
        assert!(problem.message.contains("U+0001"), "{problem}");
    }

    #[test]
    fn oversized_input_is_rejected_up_front() {
        let padding = " ".repeat(MAX_INPUT_BYTES);
        let problem = only_problem(&format!("<UserList>{padding}<Bad></UserList>"));
        assert_eq!(problem.position, at(1, 1));
        assert!(problem.message.contains("4 MiB"), "{problem}");
        let fits = format!("<UserList/>{}", &padding[b"<UserList/>".len()..]);
        assert_eq!(fits.len(), MAX_INPUT_BYTES);
        assert_eq!(parse(&fits), Ok(Document::default()));
    }

    #[test]
    fn large_file_on_one_line_parses_in_linear_time() {
        let mut text = String::from("<UserList>");
        let mut count = 0;
        while text.len() < MAX_INPUT_BYTES - 200 {
            text.push_str(&format!(
                "<User><DomainUser>d\\u{count}</DomainUser>\
                 <LineList><Line><Address>{count}</Address></Line></LineList></User>"
            ));
            count += 1;
        }
        text.push_str("</UserList>");
        let started = std::time::Instant::now();
        let document = parse(&text).expect("valid");
        // Quadratic column counting took minutes here; linear takes about a second unoptimized.
        assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
        assert_eq!(document.users.len(), count);
        let last_user_at = text.rfind("<User>").expect("has users");
        assert_eq!(document.users[count - 1].position, at(1, last_user_at + 1));
    }

    #[test]
    fn deep_nesting_is_one_problem() {
        const DEPTH: usize = 100_000;
        let text = user_list(&format!("{}{}", "<a>".repeat(DEPTH), "</a>".repeat(DEPTH)));
        let problem = only_problem(&text);
        assert_eq!(problem.message, "unknown element <a> in <UserList>");
    }

    #[test]
    fn problem_count_is_capped() {
        let attributes: String = (0..3 * MAX_PROBLEMS).map(|n| format!(" a{n}=''")).collect();
        for text in [
            user_list(&"<x/>".repeat(3 * MAX_PROBLEMS)),
            format!("<UserList{attributes}/>"),
        ] {
            let found = problems(&text);
            assert_eq!(found.len(), MAX_PROBLEMS + 1);
            assert!(found[MAX_PROBLEMS].message.contains("too many problems"));
        }
    }

    /// A linear congruential generator: deterministic noise without a dependency.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, bound: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(self.0 >> 33).unwrap_or(0) % bound
        }
    }

    /// Parsing must not panic; a failure must carry positions inside the text, and a success
    /// must survive a round trip through [`export`].
    fn check_parse_is_sane(text: &str) -> bool {
        match parse(text) {
            Ok(document) => {
                let again = parse(&export(&document)).map(without_positions);
                assert_eq!(again, Ok(without_positions(document)), "{text:?}");
                true
            }
            Err(found) => {
                assert!(!found.is_empty(), "{text:?}");
                let last_line = text.split('\n').count();
                for problem in &found {
                    let Position { line, column } = problem.position;
                    assert!(
                        (1..=last_line).contains(&line) && column >= 1,
                        "{text:?} {problem}"
                    );
                }
                false
            }
        }
    }

    /// Pieces of tsecimp-like XML, valid and broken, for generated inputs.
    #[rustfmt::skip]
    const FRAGMENTS: &[&str] = &[
        "<User>", "</User>", "<DomainUser>", "</DomainUser>", "<LineList>", "</LineList>",
        "<LineList/>", "<Line>", "</Line>", "<Line Remove=1>", "<Address>", "</Address>",
        "<PermanentID>", "</PermanentID>", "99999999999", "-1", "&amp;", "&", "&#x;", "&#65;",
        "<!--", "-->", "<![CDATA[", "]]>", "<?xml version=\"1.0\"?>", "<!DOCTYPE x>", "\n",
        " NoMerge=1", " Remove=\"x\"", "é", "<", ">", "/>", "\"", "'", "=", "<p:User>",
        "</UserList>", r"d\u", "Jürgen",
    ];

    /// Inserts a fragment, or deletes or doubles a short piece of `text`, at character boundaries.
    fn mutate(text: &mut String, noise: &mut Lcg) {
        let boundaries: Vec<usize> = text
            .char_indices()
            .map(|(at, _)| at)
            .chain([text.len()])
            .collect();
        // Short pieces keep many mutants well-formed, so the success path is exercised too.
        let first = noise.below(boundaries.len());
        let last = (first + noise.below(12)).min(boundaries.len() - 1);
        let range = boundaries[first]..boundaries[last];
        match noise.below(3) {
            0 => text.insert_str(range.start, FRAGMENTS[noise.below(FRAGMENTS.len())]),
            1 => text.replace_range(range, ""),
            _ => {
                let copy = text[range.clone()].to_owned();
                text.insert_str(range.start, &copy);
            }
        }
    }

    #[test]
    fn fragment_soup_never_panics() {
        let mut noise = Lcg(0x5eed);
        let mut parsed = 0;
        for _ in 0..400 {
            let text: String = (0..1 + noise.below(40))
                .map(|_| FRAGMENTS[noise.below(FRAGMENTS.len())])
                .collect();
            parsed += usize::from(check_parse_is_sane(&format!("<UserList>{text}")));
        }
        assert!(
            parsed < 40,
            "soup should rarely be a valid file, {parsed} were"
        );
    }

    #[test]
    fn mutated_documents_never_panic() {
        let valid = export(&rich_document());
        let mut noise = Lcg(0x7a91_2c3b);
        let mut outcomes = [0; 2];
        for round in 0..600 {
            let mut text = valid.clone();
            for _ in 0..=round % 4 {
                mutate(&mut text, &mut noise);
            }
            outcomes[usize::from(check_parse_is_sane(&text))] += 1;
        }
        // Both branches of the check must have been exercised for the test to mean anything.
        assert!(outcomes.iter().all(|&count| count > 20), "{outcomes:?}");
    }

    #[test]
    fn random_bytes_never_panic_and_fail() {
        let mut noise = Lcg(42);
        for round in 0..400 {
            let bytes: Vec<u8> = (0..noise.below(300))
                .map(|_| u8::try_from(noise.below(256)).unwrap_or(0))
                .collect();
            let text = String::from_utf8_lossy(&bytes);
            let text = if round % 2 == 0 {
                text.into_owned()
            } else {
                format!("<UserList>{text}")
            };
            assert!(!check_parse_is_sane(&text), "{text:?} parsed");
        }
    }
}
