//! Reads the captured AMI transcripts in `shared/fixtures/ami/`.
//!
//! A transcript is a sequence of blocks: `<<< [t]` followed by a message Asterisk sent,
//! `>>> [t]` followed by an action the capturing client sent, each message ending with an
//! empty line. The first line, `<<< Asterisk Call Manager/...`, is the banner; lines starting
//! with `#` are comments, and `########## SCENARIO name: ...` starts a scenario.

use std::path::PathBuf;

use tapir_driver_ami::codec::{Frame, parse};
use tapir_driver_ami::message::Message;

/// One message of a transcript, with its lines exactly as captured.
#[derive(Debug, Clone)]
pub struct Block {
    pub lines: Vec<String>,
    pub message: Message,
}

impl Block {
    fn new(lines: Vec<String>) -> Block {
        let text = format!("{}\r\n\r\n", lines.join("\r\n"));
        let Frame::Message(message) = parse(text.as_bytes()) else {
            panic!("a transcript block does not parse: {lines:?}");
        };
        Block { lines, message }
    }

    pub fn action_id(&self) -> Option<&str> {
        self.message.action_id()
    }

    pub fn action(&self) -> Option<&str> {
        self.message.get("Action")
    }

    /// The block on the wire, with its ActionID replaced by `id` when given.
    pub fn wire(&self, id: Option<&str>) -> Vec<u8> {
        let mut out = String::new();
        for line in &self.lines {
            match (id, line.split_once(": ")) {
                (Some(id), Some((key, _))) if key.eq_ignore_ascii_case("ActionID") => {
                    out.push_str(&format!("{key}: {id}"));
                }
                _ => out.push_str(line),
            }
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

/// One step of a transcript.
#[derive(Debug, Clone)]
pub enum Step {
    /// Asterisk sent this.
    Sent(Block),
    /// The client sent this action.
    Received(Block),
}

/// A parsed transcript.
#[derive(Debug, Clone)]
pub struct Transcript {
    pub banner: String,
    pub steps: Vec<Step>,
    /// Scenario names and the index of their first step.
    pub scenarios: Vec<(String, usize)>,
}

/// The path of a fixture file, relative to this crate (CI keeps `shared/` beside the repo).
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/ami")
        .join(name)
}

/// The path of a transcript composed for a test (its header says from what), kept apart from
/// the captures in this crate's `tests/fixtures/`.
pub fn composed(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

impl Transcript {
    pub fn load(name: &str) -> Transcript {
        Transcript::read(&fixture(name))
    }

    /// A transcript composed for a test rather than captured.
    pub fn load_composed(name: &str) -> Transcript {
        Transcript::read(&composed(name))
    }

    fn read(path: &std::path::Path) -> Transcript {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        Transcript::parse(&text)
    }

    pub fn parse(text: &str) -> Transcript {
        let mut transcript = Transcript {
            banner: String::new(),
            steps: Vec::new(),
            scenarios: Vec::new(),
        };
        let mut current: Option<(bool, Vec<String>)> = None;
        for raw in text.split('\n') {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if let Some(banner) = line.strip_prefix("<<< Asterisk Call Manager/") {
                transcript.banner = format!("Asterisk Call Manager/{banner}");
            } else if line.starts_with("<<< [") || line.starts_with(">>> [") {
                transcript.finish(current.take());
                current = Some((line.starts_with("<<<"), Vec::new()));
            } else if let Some(rest) = line.strip_prefix("########## SCENARIO ") {
                transcript.finish(current.take());
                let name = rest.split(':').next().unwrap_or(rest).trim().to_string();
                transcript.scenarios.push((name, transcript.steps.len()));
            } else if line.is_empty() {
                transcript.finish(current.take());
            } else if let Some((_, lines)) = current.as_mut() {
                lines.push(line.to_string());
            }
        }
        transcript.finish(current);
        transcript
    }

    fn finish(&mut self, block: Option<(bool, Vec<String>)>) {
        let Some((sent, lines)) = block else { return };
        if lines.is_empty() {
            return;
        }
        let block = Block::new(lines);
        self.steps.push(if sent {
            Step::Sent(block)
        } else {
            Step::Received(block)
        });
    }

    /// The steps of the scenario `name`, up to the next scenario.
    pub fn scenario(&self, name: &str) -> &[Step] {
        let index = self
            .scenarios
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no scenario {name}"));
        let start = self.scenarios[index].1;
        let end = self
            .scenarios
            .get(index + 1)
            .map_or(self.steps.len(), |(_, i)| *i);
        &self.steps[start..end]
    }

    /// The messages Asterisk sent in `steps`.
    pub fn sent(steps: &[Step]) -> impl Iterator<Item = &Message> {
        steps.iter().filter_map(|s| match s {
            Step::Sent(block) => Some(&block.message),
            Step::Received(_) => None,
        })
    }

    /// The blocks Asterisk sent in reply to the action with `id` (response and list items).
    pub fn replies(&self, id: &str) -> Vec<Block> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Sent(block) if block.action_id() == Some(id) => Some(block.clone()),
                _ => None,
            })
            .collect()
    }

    /// The first message Asterisk sent with event `name`.
    pub fn first_event(&self, name: &str) -> Option<Block> {
        self.steps.iter().find_map(|s| match s {
            Step::Sent(block) if block.message.event() == Some(name) => Some(block.clone()),
            _ => None,
        })
    }

    /// The ActionID of the first action named `action` in the transcript.
    pub fn first_action_id(&self, action: &str) -> Option<String> {
        self.steps.iter().find_map(|s| match s {
            Step::Received(block) if block.action() == Some(action) => {
                block.action_id().map(str::to_string)
            }
            _ => None,
        })
    }
}
