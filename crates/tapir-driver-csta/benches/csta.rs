//! Event parsing speed: one framed OpenScape Voice event through `check`, `parse` and the
//! XML reader. Run with `cargo bench -p tapir-driver-csta`.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, criterion_group, criterion_main};
use tapir_driver_csta::{codec, message};

fn event_parsing(c: &mut Criterion) {
    let xml = include_bytes!("../tests/data/osv-service-initiated.xml");
    let mut framed = BytesMut::new();
    codec::encode(codec::EVENT_INVOKE, xml, &mut framed).unwrap();
    c.bench_function("frame_and_parse_service_initiated", |b| {
        b.iter(|| {
            let len = codec::check(black_box(&framed), codec::MAX_FRAME)
                .unwrap()
                .unwrap();
            let frame = codec::parse(&framed[..len]).unwrap();
            message::parse(&frame.body).unwrap()
        })
    });
}

criterion_group!(benches, event_parsing);
criterion_main!(benches);
