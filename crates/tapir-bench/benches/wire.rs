//! Micro-benchmarks of the per-event work that public APIs expose: building a call's wire
//! picture from the model, encoding the event a client receives, decoding it again (what a
//! client does), parsing client commands, and computing call features.
//!
//! Run: `cargo bench -p tapir-bench --bench wire -- --quick`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tapir_model::{
    Call, CallFeatures, CallId, CallInfo, CallOrigin, CallReason, CallState, Capabilities,
    ConnectedMode, LineId, Party, call_features,
};
use tapir_wire::{CallDto, ClientMessage, EventDto, SequencedDto, ServerMessage};

fn party(number: &str, name: &str) -> Party {
    Party {
        number: Some(number.into()),
        name: Some(name.into()),
    }
}

/// A connected internal call, as a typical `call_state` event carries it.
fn call() -> Call {
    let info = CallInfo {
        origin: CallOrigin::Outbound,
        reason: CallReason::Direct,
        caller: party("100001", "Extension 100001"),
        called: party("150001", "Extension 150001"),
        connected: party("150001", "Extension 150001"),
        redirecting: Party::default(),
        redirection: Party::default(),
        related: None,
        conference: None,
    };
    let mut call = Call::new(
        CallId(4711),
        LineId(2),
        CallState::Ringback,
        info,
        1_760_000_000_000,
    );
    call.enter(
        CallState::Connected(ConnectedMode::Active),
        1_760_000_000_250,
    );
    call
}

fn event(call: &Call) -> SequencedDto {
    let features = call_features(call, std::iter::empty(), Capabilities::all());
    SequencedDto {
        seq: 123_456,
        at: 1_760_000_000_250,
        event: EventDto::CallState {
            call: CallDto::new(call, features),
        },
    }
}

fn benches(c: &mut Criterion) {
    let call = call();
    let other = {
        let mut held = call.clone();
        held.id = CallId(4712);
        held.enter(CallState::OnHold, 1_760_000_000_300);
        held
    };
    c.bench_function("model/call_features_alone", |b| {
        b.iter(|| call_features(black_box(&call), std::iter::empty(), Capabilities::all()))
    });
    c.bench_function("model/call_features_with_held_call", |b| {
        b.iter(|| {
            call_features(
                black_box(&call),
                std::iter::once(&other),
                Capabilities::all(),
            )
        })
    });
    c.bench_function("wire/call_dto_from_model", |b| {
        b.iter(|| CallDto::new(black_box(&call), CallFeatures::DROP | CallFeatures::HOLD))
    });

    let sequenced = event(&call);
    let message = ServerMessage::Event(Box::new(sequenced.clone()));
    c.bench_function("wire/encode_call_state_event", |b| {
        b.iter(|| serde_json::to_string(black_box(&message)))
    });
    c.bench_function("wire/encode_call_state_event_into_buffer", |b| {
        let mut buffer = Vec::with_capacity(1024);
        b.iter(|| {
            buffer.clear();
            serde_json::to_writer(&mut buffer, black_box(&message))
        })
    });
    let text = serde_json::to_string(&message).expect("an event encodes");
    c.bench_function("wire/decode_call_state_event", |b| {
        b.iter(|| serde_json::from_str::<ServerMessage>(black_box(&text)))
    });

    let make_call =
        r#"{"type":"command","id":"m17","command":"make_call","line":17,"to":"150017"}"#;
    c.bench_function("wire/decode_client_make_call", |b| {
        b.iter(|| ClientMessage::from_json(black_box(make_call)))
    });
    let subscribe = r#"{"type":"subscribe","since":1234,"lines":[1,2,3,4,5,6,7,8]}"#;
    c.bench_function("wire/decode_client_subscribe", |b| {
        b.iter(|| ClientMessage::from_json(black_box(subscribe)))
    });
}

criterion_group!(wire, benches);
criterion_main!(wire);
