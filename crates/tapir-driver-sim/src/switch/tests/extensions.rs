//! Extensions added and removed while the switch runs.

use tapir_model::{CallState, PbxSimAction};
use tapir_provider::{DeviceKey, ProviderCommand, ProviderEvent};

use super::{Sim, last_call_on, make_call};

fn add(number: &str, name: Option<&str>) -> ProviderCommand {
    ProviderCommand::SimulatePbx(PbxSimAction::AddExtension {
        number: number.into(),
        name: name.map(String::from),
    })
}

fn remove(number: &str) -> ProviderCommand {
    ProviderCommand::SimulatePbx(PbxSimAction::RemoveExtension {
        number: number.into(),
    })
}

#[test]
fn extensions_come_and_go_with_their_calls() {
    let mut sim = Sim::new();
    sim.ok(add("250", Some("Grace")));
    assert!(sim.last_events.iter().any(|e| matches!(e,
        ProviderEvent::DeviceAdded(d) if d.address == "250" && d.name == "Grace")));
    assert!(sim.switch.devices().iter().any(|d| d.address == "250"));

    let (_, reports) = sim.call(make_call("201", "250"));
    let ringing = last_call_on(&reports, "250");
    sim.ok(remove("250"));
    let idle_at = sim.last_events.iter().position(|e| {
        matches!(e,
        ProviderEvent::Call(r) if r.call == ringing && r.state == CallState::Idle)
    });
    let gone_at = sim.last_events.iter().position(|e| {
        matches!(e,
        ProviderEvent::DeviceRemoved(DeviceKey(k)) if k == "250")
    });
    assert!(
        idle_at.is_some() && gone_at.is_some() && idle_at < gone_at,
        "{:?}",
        sim.last_events
    );
    assert!(sim.switch.devices().iter().all(|d| d.address != "250"));
    let error = sim.fail(make_call("250", "201"));
    assert_eq!(error.kind, tapir_model::ErrorKind::InvalidLine, "{error}");

    sim.ok(add("250", None));
    assert!(
        sim.last_events.iter().any(|e| matches!(e,
        ProviderEvent::DeviceAdded(d) if d.name == "Grace")),
        "a returning extension keeps its name"
    );
}

#[test]
fn bad_extension_changes_are_refused() {
    let mut sim = Sim::new();
    for (command, expected) in [
        (add("201", None), "exists already"),
        (add("0301", None), "not an extension"),
        (remove("999"), "no extension 999"),
    ] {
        let error = sim.fail(command);
        assert!(error.message.contains(expected), "{error}");
    }
}
