//! The SIP provider's dialog-info parser and mapping on the documents Kamailio's
//! `pua_dialoginfo` sends for one call between two monitored lines (the layout of the NOTIFY
//! body recorded in `shared/reference/sip-testbed.md`): 201 calls 202, 202 answers, 201 hangs
//! up. Run with `cargo bench -p tapir-driver-sip --bench dialog_info`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tapir_driver_sip::dialog_info;
use tapir_driver_sip::mapping::{LineSpec, Tracker};
use tapir_provider::DeviceKey;

/// One NOTIFY body of `entity` about its dialog with `remote`.
fn document(entity: &str, remote: &str, version: u64, direction: &str, state: &str) -> String {
    format!(
        r#"<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="{version}" state="full" entity="sip:{entity}@127.0.0.1">
  <dialog id="padi-6b03ba45-7e6f-3" call-id="6a3e5a0f23e4e303" direction="{direction}">
    <state>{state}</state>
    <remote><identity>sip:{remote}@127.0.0.1</identity><target uri="sip:{remote}-0x5570900b9600@127.0.0.1:5210"/></remote>
    <local><identity>sip:{entity}@127.0.0.1;transport=udp</identity><target uri="sip:{entity}@127.0.0.1;transport=udp"/></local>
  </dialog>
</dialog-info>"#
    )
}

/// The call's documents in the order Kamailio sends them: (line, body).
fn call() -> Vec<(&'static str, String)> {
    vec![
        ("201", document("201", "202", 2, "initiator", "Trying")),
        ("201", document("201", "202", 3, "initiator", "early")),
        ("202", document("202", "201", 2, "recipient", "early")),
        ("201", document("201", "202", 4, "initiator", "confirmed")),
        ("202", document("202", "201", 3, "recipient", "confirmed")),
        ("201", document("201", "202", 5, "initiator", "terminated")),
        ("202", document("202", "201", 4, "recipient", "terminated")),
    ]
}

fn device(user: &str) -> DeviceKey {
    DeviceKey(format!("sip:{user}@127.0.0.1"))
}

fn tracker() -> Tracker {
    let lines = ["201", "202"]
        .into_iter()
        .map(|user| LineSpec {
            device: device(user),
            user: user.into(),
            name: None,
        })
        .collect();
    Tracker::new(lines, "tapir")
}

fn dialog_info(c: &mut Criterion) {
    let documents = call();
    let mut group = c.benchmark_group("sip");
    group.throughput(Throughput::Elements(documents.len() as u64));
    group.bench_function("parse_call_documents", |b| {
        b.iter(|| {
            for (_, body) in &documents {
                black_box(dialog_info::parse(black_box(body.as_bytes())).unwrap());
            }
        })
    });
    group.bench_function("parse_and_map_call_documents", |b| {
        b.iter_batched(
            tracker,
            |mut tracker| {
                let mut reports = Vec::new();
                for (user, body) in &documents {
                    let info = dialog_info::parse(body.as_bytes()).unwrap().unwrap();
                    tracker.apply(&device(user), "sub-1", &info, &mut reports);
                }
                assert_eq!(reports.len(), 9, "{reports:?}");
                reports
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, dialog_info);
criterion_main!(benches);
