//! Parsing and mapping speed: the AMI traffic Asterisk sent in `scenarios.txt` (every
//! scenario, about 1,250 messages), decoded by the codec and fed to the mapping.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tapir_driver_ami::codec::{AmiCodec, Frame};
use tapir_driver_ami::mapping::Tracker;
use tapir_driver_ami::mapping::lines::Lines;
use tapir_driver_ami::message::Message;
use tokio_util::codec::Decoder;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/ami")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What Asterisk sent in a transcript, as the bytes on the wire.
fn received_bytes(transcript: &str) -> Vec<u8> {
    let mut out = String::new();
    let mut inside = false;
    for raw in transcript.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.starts_with("<<< [") {
            inside = true;
        } else if line.starts_with(">>> [") || line.starts_with('#') {
            inside = false;
        } else if inside {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.into_bytes()
}

fn decode(bytes: &[u8]) -> Vec<Message> {
    let mut codec = AmiCodec::default();
    let mut buf = BytesMut::from(bytes);
    let mut messages = Vec::new();
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        if let Frame::Message(message) = frame {
            messages.push(message);
        }
    }
    messages
}

fn lines() -> Lines {
    let basic = decode(&received_bytes(&fixture("basic-call.txt")));
    let endpoints: Vec<Message> = basic
        .iter()
        .filter(|m| m.event() == Some("EndpointList"))
        .cloned()
        .collect();
    let hints: Vec<Message> = basic
        .iter()
        .filter(|m| m.event() == Some("ExtensionStatus") && m.action_id().is_some())
        .cloned()
        .collect();
    Lines::build(
        tapir_driver_ami::Technology::Pjsip,
        &endpoints,
        &hints,
        &BTreeMap::new(),
        |_, x| x.to_string(),
    )
}

fn bench(c: &mut Criterion) {
    let bytes = received_bytes(&fixture("scenarios.txt"));
    let messages = decode(&bytes);
    let lines = lines();
    let mut group = c.benchmark_group("ami");
    group.throughput(Throughput::Elements(messages.len() as u64));
    group.bench_function("parse_scenarios", |b| b.iter(|| decode(&bytes).len()));
    group.bench_function("parse_and_map_scenarios", |b| {
        b.iter(|| {
            let mut tracker = Tracker::new(lines.clone());
            let mut out = Vec::new();
            for message in decode(&bytes) {
                tracker.handle(&message, &mut out);
            }
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
