//! Real messages from the reference (OpenScape Voice, Avaya, Eltex, pyssimist) through the
//! parser and the mapping, and tapir's requests checked against the unofficial schema subset.

use std::process::Command;

use tapir_driver_csta::mapping::{Mapping, Output};
use tapir_driver_csta::message::{
    self, CallEventKind, ConnectionId, Event, ForwardingItem, Incoming, Request,
};
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

/// Whether `xml` validates against `schema` (with xmllint's complaint); `None` when xmllint
/// is not installed.
fn xmllint(xml: &str, schema: &str) -> Option<Result<(), String>> {
    if Command::new("xmllint").arg("--version").output().is_err() {
        eprintln!("SKIPPED schema check: xmllint is not installed (apt-get install libxml2-utils)");
        return None;
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), xml).unwrap();
    let out = Command::new("xmllint")
        .args(["--noout", "--schema", schema])
        .arg(file.path())
        .output()
        .unwrap();
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

#[test]
fn clear_call_and_the_status_queries_are_written_in_schema_order() {
    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/csta-services.UNOFFICIAL.xsd"
    );
    let connection = ConnectionId {
        call: Some("FF00".into()),
        device: Some("1000".into()),
    };
    let requests = [
        Request::ClearCall { call: connection },
        Request::GetForwarding {
            device: "1000".into(),
        },
        Request::GetDoNotDisturb {
            device: "1000".into(),
        },
        Request::MonitorStopResponse,
    ];
    for request in requests {
        let xml = request.to_xml(message::CSTA_ED4);
        assert!(xml.contains(&format!("<{} ", request.name())), "{xml}");
        if let Some(Err(complaint)) = xmllint(&xml, schema) {
            panic!("{}: {complaint}\n{xml}", request.name());
        }
    }
    // A misordered document fails, so the check above can fail too.
    let wrong = r#"<ClearCall xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed4"><callToBeCleared><deviceID>1</deviceID><callID>2</callID></callToBeCleared></ClearCall>"#;
    assert!(!matches!(xmllint(wrong, schema), Some(Ok(()))));
}

#[test]
fn status_answers_segments_and_service_messages_are_read() {
    let forwarding = br#"<GetForwardingResponse xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3/priv5"><forwardingList><forwardListItem><forwardingType>forwardImmediate</forwardingType><forwardStatus>true</forwardStatus><forwardDN>2000</forwardDN></forwardListItem><forwardListItem><forwardingType>forwardNoAns</forwardingType><forwardStatus>false</forwardStatus></forwardListItem></forwardingList></GetForwardingResponse>"#;
    assert_eq!(
        message::parse(forwarding).unwrap(),
        Incoming::Forwarding {
            items: vec![
                ForwardingItem {
                    kind: "forwardImmediate".into(),
                    on: true,
                    to: Some("2000".into())
                },
                ForwardingItem {
                    kind: "forwardNoAns".into(),
                    on: false,
                    to: None
                },
            ]
        }
    );
    let dnd =
        b"<GetDoNotDisturbResponse><doNotDisturbOn>true</doNotDisturbOn></GetDoNotDisturbResponse>";
    assert_eq!(
        message::parse(dnd).unwrap(),
        Incoming::DoNotDisturb { on: true }
    );
    let segmented = br#"<SnapshotDeviceResponse xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed4"><crossRefIDorSnapshotData><serviceCrossRefID>77</serviceCrossRefID></crossRefIDorSnapshotData></SnapshotDeviceResponse>"#;
    assert_eq!(
        message::parse(segmented).unwrap(),
        Incoming::Snapshot {
            calls: Vec::new(),
            segmented: Some("77".into())
        }
    );
    let segment = br#"<ns3:SnapshotDeviceData xmlns:ns3="http://www.ecma-international.org/standards/ecma-323/csta/ed4"><ns3:serviceCrossRefID>77</ns3:serviceCrossRefID><ns3:segmentID>2</ns3:segmentID><ns3:lastSegment>true</ns3:lastSegment><ns3:snapshotData><ns3:snapshotDeviceResponseInfo><ns3:connectionIdentifier><ns3:callID>C9</ns3:callID><ns3:deviceID>1000</ns3:deviceID></ns3:connectionIdentifier><ns3:localCallState><ns3:compoundCallState><ns3:localConnectionState>hold</ns3:localConnectionState></ns3:compoundCallState></ns3:localCallState></ns3:snapshotDeviceResponseInfo></ns3:snapshotData></ns3:SnapshotDeviceData>"#;
    let Incoming::SnapshotSegment {
        cross_ref,
        segment,
        last,
        calls,
    } = message::parse(segment).unwrap()
    else {
        panic!("a snapshot segment");
    };
    assert_eq!((cross_ref.as_str(), segment, last), ("77", 2, true));
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].connection.call.as_deref(), Some("C9"));
    assert_eq!(calls[0].state, "hold");
    let out = br#"<OutOfServiceEvent xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed4"><monitorCrossRefID>5</monitorCrossRefID><device><deviceIdentifier>1000</deviceIdentifier></device><cause>maintenance</cause></OutOfServiceEvent>"#;
    assert_eq!(
        message::parse(out).unwrap(),
        Incoming::Event(Event::Service {
            cross_ref: "5".into(),
            in_service: false,
            cause: Some("maintenance".into())
        })
    );
    let stop = br#"<MonitorStop xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed4"><monitorCrossRefID>5</monitorCrossRefID></MonitorStop>"#;
    assert_eq!(
        message::parse(stop).unwrap(),
        Incoming::MonitorEnded {
            cross_ref: "5".into()
        }
    );
}
