//! What the CLI prints: aligned tables for people, JSON for scripts.

use std::io::{self, Write};

use tapir_wire::{
    CallDto, CommandResultDto, EventDto, InstanceDto, LineDto, ReloadDto, SequencedDto,
};

/// Writes one line to stdout; a closed pipe (`tapir lines | head`) is reported as
/// `BrokenPipe` so that `main` can end quietly.
pub fn line(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()
}

pub fn json<T: serde::Serialize>(value: &T) -> io::Result<()> {
    let text = serde_json::to_string(value).map_err(io::Error::other)?;
    line(&text)
}

/// Prints rows as columns aligned to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let render = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                text.push_str(cell);
                text.push_str(&" ".repeat(pad + 2));
            }
        }
        text.trim_end().to_owned()
    };
    line(&render(header.to_vec()))?;
    for row in rows {
        line(&render(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

pub fn instances(instances: &[InstanceDto]) -> io::Result<()> {
    let rows: Vec<Vec<String>> = instances
        .iter()
        .map(|i| {
            vec![
                i.name.clone(),
                i.driver.clone(),
                i.status.clone(),
                i.lines.to_string(),
                i.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(&["INSTANCE", "DRIVER", "STATUS", "LINES", "REASON"], &rows)
}

pub fn lines(lines: &[LineDto], calls: &[CallDto]) -> io::Result<()> {
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            let on_line: Vec<String> = calls
                .iter()
                .filter(|c| c.line == l.id)
                .map(|c| format!("{}:{}", c.id, c.state))
                .collect();
            let mut flags = Vec::new();
            if l.do_not_disturb {
                flags.push("dnd".to_owned());
            }
            for f in &l.forwards {
                flags.push(format!("fwd-{}>{}", f.mode, f.destination));
            }
            vec![
                format!("#{}", l.id),
                l.instance.clone(),
                l.address.clone(),
                l.name.clone(),
                l.status.replace('_', " "),
                flags.join(" "),
                on_line.join(" "),
            ]
        })
        .collect();
    table(
        &[
            "ID", "INSTANCE", "EXT", "NAME", "STATUS", "SETTINGS", "CALLS",
        ],
        &rows,
    )
}

pub fn calls(calls: &[CallDto], lines: &[LineDto]) -> io::Result<()> {
    let rows: Vec<Vec<String>> = calls
        .iter()
        .map(|c| {
            let ext = lines
                .iter()
                .find(|l| l.id == c.line)
                .map(|l| l.address.clone())
                .unwrap_or_else(|| format!("#{}", c.line));
            vec![
                c.id.to_string(),
                ext,
                state_text(c),
                c.origin.clone(),
                c.caller.display(),
                c.called.display(),
                c.connected.display(),
                c.features.join(","),
            ]
        })
        .collect();
    table(
        &[
            "CALL",
            "LINE",
            "STATE",
            "ORIGIN",
            "CALLER",
            "CALLED",
            "CONNECTED",
            "POSSIBLE",
        ],
        &rows,
    )
}

fn state_text(c: &CallDto) -> String {
    match &c.mode {
        Some(mode) if c.state == "disconnected" || c.state == "busy" => {
            format!("{} ({mode})", c.state)
        }
        _ => c.state.clone(),
    }
}

pub fn reload(report: &ReloadDto) -> io::Result<()> {
    let list = |names: &[String]| {
        if names.is_empty() {
            "-".to_owned()
        } else {
            names.join(", ")
        }
    };
    line(&format!("added: {}", list(&report.added)))?;
    line(&format!("removed: {}", list(&report.removed)))?;
    line(&format!("restarted: {}", list(&report.restarted)))?;
    line(&format!("unchanged: {}", list(&report.unchanged)))
}

pub fn result(what: &str, result: &CommandResultDto) -> io::Result<()> {
    match (result.call, &result.parked_at) {
        (Some(call), _) => line(&format!("{what}: call {call}")),
        (None, Some(place)) => line(&format!("{what} at {place}")),
        (None, None) => line(&format!("{what}: done")),
    }
}

/// One event as a line for people.
pub fn event(e: &SequencedDto) -> String {
    let body = match &e.event {
        EventDto::LineCreated { line } => {
            format!(
                "line #{} {} {:?} created on {}",
                line.id, line.address, line.name, line.instance
            )
        }
        EventDto::LineChanged { line } => {
            format!(
                "line #{} {} is {}{}",
                line.id,
                line.address,
                line.status.replace('_', " "),
                if line.do_not_disturb {
                    ", do not disturb"
                } else {
                    ""
                }
            )
        }
        EventDto::LineRemoved { line, instance } => {
            format!("line #{line} is gone from {instance} (defunct)")
        }
        EventDto::LinePurged { line, instance } => format!("line #{line} of {instance} purged"),
        EventDto::CallNew { call } => format!("{} new: {}", call_head(call), call_story(call)),
        EventDto::CallState { call } => format!("{} {}", call_head(call), call_story(call)),
        EventDto::CallInfo { call, changed, .. } => {
            format!(
                "{} info ({}): {}",
                call_head(call),
                changed.join(", "),
                call_story(call)
            )
        }
        EventDto::CallFeatures { call } => {
            format!(
                "{} possible now: {}",
                call_head(call),
                call.features.join(", ")
            )
        }
        EventDto::InstanceChanged { instance } => format!(
            "instance {} is {}{}",
            instance.name,
            instance.status,
            instance
                .reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
    };
    format!("{:>6}  {body}", e.seq)
}

fn call_head(call: &CallDto) -> String {
    format!("call {} on line #{}", call.id, call.line)
}

fn call_story(call: &CallDto) -> String {
    let mut text = state_text(call);
    text.push_str(&format!(
        "  {} -> {}",
        call.caller.display(),
        call.called.display()
    ));
    if call.connected.number.is_some() || call.connected.name.is_some() {
        text.push_str(&format!("  connected {}", call.connected.display()));
    }
    if call.reason != "direct" {
        text.push_str(&format!("  ({})", call.reason));
    }
    if !call.features.is_empty() {
        text.push_str(&format!("  [{}]", call.features.join(" ")));
    }
    text
}
