//! Real messages from the reference (OpenScape Voice, Avaya, Eltex, pyssimist) through the
//! parser and the mapping, and tapir's requests checked against the unofficial schema subset.

use std::process::Command;

use tapir_driver_csta::mapping::{Mapping, Output};
use tapir_driver_csta::message::{self, CallEventKind, Event, Incoming, Request};
use tapir_model::{CallOrigin, CallState};

fn call_event(xml: &[u8]) -> Event {
    match message::parse(xml).unwrap() {
        Incoming::Event(event) => event,
        other => panic!("not an event: {other:?}"),
    }
}

#[test]
fn osv_events_map_to_dialtone_then_proceeding() {
    let mut mapping = Mapping::default();
    mapping.monitor_started("302118840100", "1169730059");
    let first = call_event(include_bytes!("data/osv-service-initiated.xml"));
    let Event::Call(call) = &first else { panic!() };
    assert_eq!(call.kind, CallEventKind::ServiceInitiated);
    assert_eq!(call.subject.as_deref(), Some("N<302118840100>;noa=nk"));
    let out = mapping.apply(&first);
    let [Output::Call(report)] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(report.origin, CallOrigin::Outbound);
    assert!(matches!(report.state, CallState::Dialtone(_)));
    let out = mapping.apply(&call_event(include_bytes!("data/osv-originated.xml")));
    let [Output::Call(report)] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(report.state, CallState::Proceeding);
    assert_eq!(report.called.number.as_deref(), Some("302118840101"));
}

#[test]
fn responses_are_read_whatever_the_namespace() {
    let osv = br#"<StartApplicationSessionPosResponse xmlns:aps="http://www.ecma-international.org/standards/ecma-354/appl_session"><sessionID>009968951</sessionID><actualProtocolVersion>http://www.ecma-international.org/standards/ecma-323/csta/ed4</actualProtocolVersion><actualSessionDuration>600</actualSessionDuration><extensions><actualHBT>0</actualHBT></extensions></StartApplicationSessionPosResponse>"#;
    assert!(matches!(message::parse(osv).unwrap(),
        Incoming::SessionStarted { session_id, duration: Some(600), .. } if session_id == "009968951"));
    let avaya = br#"<StartApplicationSessionNegResponse xmlns="http://www.ecma-international.org/standards/ecma-354/appl_session"><errorCode><definedError>invalidApplicationInfo</definedError></errorCode></StartApplicationSessionNegResponse>"#;
    assert_eq!(
        message::parse(avaya).unwrap(),
        Incoming::SessionRefused {
            reason: "invalidApplicationInfo".into()
        }
    );
    let error = br#"<CSTAErrorCode xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3/priv5"><operation>invalidDeviceID</operation></CSTAErrorCode>"#;
    assert!(
        matches!(message::parse(error).unwrap(), Incoming::Error(e) if e.value == "invalidDeviceID")
    );
    let register = b"<SystemRegisterResponse>\n  <sysStatRegisterID>PythonCstaServer</sysStatRegisterID>\n</SystemRegisterResponse>";
    assert_eq!(
        message::parse(register).unwrap(),
        Incoming::SystemRegistered {
            register_id: Some("PythonCstaServer".into())
        }
    );
    let transfer = br#"<csta:TransferedEvent xmlns:csta="http://www.ecma-international.org/standards/ecma-323/csta/ed3"><csta:monitorCrossRefID>7</csta:monitorCrossRefID><csta:primaryOldCall><csta:callID>1</csta:callID></csta:primaryOldCall></csta:TransferedEvent>"#;
    assert!(
        matches!(message::parse(transfer).unwrap(), Incoming::Event(Event::Call(c)) if c.kind == CallEventKind::Transferred)
    );
}

#[test]
fn make_call_is_written_in_schema_order_and_validates() {
    let xml = Request::MakeCall {
        from: "201".into(),
        to: "202".into(),
    }
    .to_xml(message::CSTA_ED4);
    let calling = xml.find("<callingDevice>").unwrap();
    let called = xml.find("<calledDirectoryNumber>").unwrap();
    let auto = xml.find("<autoOriginate>").unwrap();
    assert!(calling < called && called < auto, "{xml}");
    let schema = "../../../shared/reference/csta/xsd-unofficial/csta-core-subset.UNOFFICIAL.xsd";
    if Command::new("xmllint").arg("--version").output().is_err() {
        eprintln!("SKIPPED schema check: xmllint is not installed (apt-get install libxml2-utils)");
        return;
    }
    if !std::path::Path::new(schema).exists() {
        eprintln!("SKIPPED schema check: {schema} is missing (shared/ beside the repo)");
        return;
    }
    let file = std::env::temp_dir().join(format!("tapir-csta-makecall-{}.xml", std::process::id()));
    std::fs::write(&file, &xml).unwrap();
    let out = Command::new("xmllint")
        .args(["--noout", "--schema", schema])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
