//! Typed CSTA messages: what the switch sends ([`Incoming`]) and the requests tapir sends
//! ([`Request`]), independent of the framing so that another encoding can sit beside XML.
//!
//! Incoming messages are recognised by the local name of their root, whatever the namespace
//! edition; the standard's own misspellings (`TransferedEvent`) are accepted with the correct
//! ones. Requests are written with their elements in the order of the ECMA-323 schema.

use crate::xml::{Element, XmlError, escape};

/// The ECMA-323 namespace tapir writes unless the session negotiated another.
pub const CSTA_ED4: &str = "http://www.ecma-international.org/standards/ecma-323/csta/ed4";
/// The ECMA-354 application-session namespace.
pub const APPL_SESSION: &str = "http://www.ecma-international.org/standards/ecma-354/appl_session";

/// A connection: a call as seen at one device. Either part may be missing on some switches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ConnectionId {
    pub call: Option<String>,
    pub device: Option<String>,
}

impl ConnectionId {
    fn read(element: Option<&Element>) -> ConnectionId {
        ConnectionId {
            call: element
                .and_then(|e| e.child_text("callID"))
                .map(String::from),
            device: element
                .and_then(|e| e.child("deviceID"))
                .map(|d| d.text.clone())
                .filter(|t| !t.is_empty()),
        }
    }

    fn write(&self, name: &str, out: &mut String) {
        out.push_str(&format!("<{name}>"));
        if let Some(call) = &self.call {
            out.push_str(&format!("<callID>{}</callID>", escape(call)));
        }
        if let Some(device) = &self.device {
            out.push_str(&format!("<deviceID>{}</deviceID>", escape(device)));
        }
        out.push_str(&format!("</{name}>"));
    }
}

/// What kind of call event arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEventKind {
    ServiceInitiated,
    Originated,
    NetworkReached,
    Delivered,
    Established,
    Held,
    Retrieved,
    ConnectionCleared,
    CallCleared,
    Transferred,
    Conferenced,
    Diverted,
    Failed,
    Queued,
}

impl CallEventKind {
    fn from_root(name: &str) -> Option<(CallEventKind, &'static str, &'static str)> {
        // (kind, the element holding the event's connection, the element naming its subject)
        Some(match name {
            "ServiceInitiatedEvent" => (
                CallEventKind::ServiceInitiated,
                "initiatedConnection",
                "initiatingDevice",
            ),
            "OriginatedEvent" => (
                CallEventKind::Originated,
                "originatedConnection",
                "callingDevice",
            ),
            "NetworkReachedEvent" => (
                CallEventKind::NetworkReached,
                "outboundConnection",
                "networkInterfaceUsed",
            ),
            "DeliveredEvent" => (CallEventKind::Delivered, "connection", "alertingDevice"),
            "EstablishedEvent" => (
                CallEventKind::Established,
                "establishedConnection",
                "answeringDevice",
            ),
            "HeldEvent" => (CallEventKind::Held, "heldConnection", "holdingDevice"),
            "RetrievedEvent" => (
                CallEventKind::Retrieved,
                "retrievedConnection",
                "retrievingDevice",
            ),
            "ConnectionClearedEvent" => (
                CallEventKind::ConnectionCleared,
                "droppedConnection",
                "releasingDevice",
            ),
            "CallClearedEvent" => (CallEventKind::CallCleared, "clearedCall", "clearedCall"),
            "TransferedEvent" | "TransferredEvent" => (
                CallEventKind::Transferred,
                "primaryOldCall",
                "transferringDevice",
            ),
            "ConferencedEvent" => (
                CallEventKind::Conferenced,
                "primaryOldCall",
                "conferencingDevice",
            ),
            "DivertedEvent" => (CallEventKind::Diverted, "connection", "divertingDevice"),
            "FailedEvent" => (CallEventKind::Failed, "failedConnection", "failingDevice"),
            "QueuedEvent" => (CallEventKind::Queued, "queuedConnection", "queue"),
            _ => return None,
        })
    }
}

/// One old/new pair of a transfer's or conference's connection list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionChange {
    pub old: ConnectionId,
    pub new: ConnectionId,
    pub endpoint: Option<String>,
}

/// A call event, with the fields the mapping reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEvent {
    pub kind: CallEventKind,
    pub cross_ref: String,
    /// The event's connection (for transfers and conferences: the primary old call).
    pub connection: ConnectionId,
    /// The device that acted: alerting, answering, holding, releasing, transferring, ...
    pub subject: Option<String>,
    pub calling: Option<String>,
    pub called: Option<String>,
    pub last_redirection: Option<String>,
    /// Where a diverted, transferred or conferenced call went.
    pub destination: Option<String>,
    pub secondary_old: Option<ConnectionId>,
    pub changes: Vec<ConnectionChange>,
    pub local_state: Option<String>,
    pub cause: Option<String>,
}

/// An unsolicited event (invoke id 9999).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Call(Box<CallEvent>),
    Forwarding {
        cross_ref: String,
        device: Option<String>,
        kind: String,
        on: bool,
        to: Option<String>,
    },
    DoNotDisturb {
        cross_ref: String,
        device: Option<String>,
        on: bool,
    },
    /// OutOfServiceEvent (`false`) or BackInServiceEvent (`true`).
    Service {
        cross_ref: String,
        in_service: bool,
        cause: Option<String>,
    },
}

/// One entry of a GetForwarding answer's `forwardingList`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardingItem {
    /// The ECMA-269 forwarding type as sent (`forwardImmediate`, `forwardBusy`, ...).
    pub kind: String,
    pub on: bool,
    pub to: Option<String>,
}

/// One call in a SnapshotDevice answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotCall {
    pub connection: ConnectionId,
    /// The local connection state (`alerting`, `connected`, `hold`, ...) or simple call state.
    pub state: String,
}

/// `CSTAErrorCode`: the error's category element and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CstaError {
    pub category: String,
    pub value: String,
}

/// Everything the switch sends, by what tapir does with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Event(Event),
    /// The switch asks about us (OSV keep-alive and handshake); answered with the same invoke id.
    SystemStatus {
        status: Option<String>,
    },
    /// The switch asks for our status (`RequestSystemStatus`).
    RequestSystemStatus,
    SessionStarted {
        session_id: String,
        version: Option<String>,
        duration: Option<u32>,
    },
    SessionRefused {
        reason: String,
    },
    SystemRegistered {
        register_id: Option<String>,
    },
    MonitorStarted {
        cross_ref: String,
    },
    /// A call-creating service answered with the new connection.
    CallCreated {
        connection: ConnectionId,
    },
    /// A SnapshotDeviceResponse: the calls, or (`segmented`) the `serviceCrossRefID` under
    /// which `SnapshotDeviceData` segments deliver them.
    Snapshot {
        calls: Vec<SnapshotCall>,
        segmented: Option<String>,
    },
    /// One `SnapshotDeviceData` segment of a segmented snapshot.
    SnapshotSegment {
        cross_ref: String,
        segment: u32,
        last: bool,
        calls: Vec<SnapshotCall>,
    },
    /// A GetForwardingResponse.
    Forwarding {
        items: Vec<ForwardingItem>,
    },
    /// A GetDoNotDisturbResponse.
    DoNotDisturb {
        on: bool,
    },
    /// The switch ended a monitor (a `MonitorStop` request from the switching function);
    /// answered with `MonitorStopResponse` under the same invoke id.
    MonitorEnded {
        cross_ref: String,
    },
    Error(CstaError),
    /// Any other positive response (`…Response`), e.g. AnswerCallResponse.
    Done {
        name: String,
    },
    /// A root element tapir does not handle.
    Unknown {
        name: String,
    },
}

/// Parses one XML document from the switch.
pub fn parse(xml: &[u8]) -> Result<Incoming, XmlError> {
    let root = crate::xml::parse(xml)?;
    Ok(classify(&root))
}

fn classify(root: &Element) -> Incoming {
    if let Some((kind, connection, subject)) = CallEventKind::from_root(&root.name) {
        return Incoming::Event(Event::Call(Box::new(call_event(
            root, kind, connection, subject,
        ))));
    }
    let text = |name: &str| root.child_text(name).map(String::from);
    let cross_ref = || text("monitorCrossRefID").unwrap_or_default();
    match root.name.as_str() {
        "ForwardingEvent" => Incoming::Event(Event::Forwarding {
            cross_ref: cross_ref(),
            device: device(root.child("device")),
            kind: text("forwardingType").unwrap_or_default(),
            on: text("forwardStatus").as_deref() == Some("true"),
            to: device(root.child("forwardTo")),
        }),
        "DoNotDisturbEvent" => Incoming::Event(Event::DoNotDisturb {
            cross_ref: cross_ref(),
            device: device(root.child("device")),
            on: text("doNotDisturbOn").as_deref() == Some("true"),
        }),
        "OutOfServiceEvent" | "BackInServiceEvent" => Incoming::Event(Event::Service {
            cross_ref: cross_ref(),
            in_service: root.name == "BackInServiceEvent",
            cause: text("cause"),
        }),
        "MonitorStop" => Incoming::MonitorEnded {
            cross_ref: cross_ref(),
        },
        "SystemStatus" => Incoming::SystemStatus {
            status: text("systemStatus"),
        },
        "RequestSystemStatus" => Incoming::RequestSystemStatus,
        "StartApplicationSessionPosResponse" => Incoming::SessionStarted {
            session_id: text("sessionID").unwrap_or_default(),
            version: text("actualProtocolVersion"),
            duration: text("actualSessionDuration").and_then(|d| d.parse().ok()),
        },
        "StartApplicationSessionNegResponse" => Incoming::SessionRefused {
            reason: root
                .find("definedError")
                .map(|e| e.text.clone())
                .unwrap_or_else(|| "no reason given".into()),
        },
        "SystemRegisterResponse" => Incoming::SystemRegistered {
            register_id: text("sysStatRegisterID"),
        },
        "MonitorStartResponse" => Incoming::MonitorStarted {
            cross_ref: cross_ref(),
        },
        "MakeCallResponse" | "ConsultationCallResponse" => Incoming::CallCreated {
            connection: ConnectionId::read(root.children.first()),
        },
        "DirectedPickupCallResponse" | "GroupPickupCallResponse" | "ConferenceCallResponse" => {
            Incoming::CallCreated {
                connection: ConnectionId::read(root.children.first()),
            }
        }
        "SnapshotDeviceResponse" => Incoming::Snapshot {
            calls: snapshot_calls(root),
            segmented: root
                .find("crossRefIDorSnapshotData")
                .and_then(|c| c.child_text("serviceCrossRefID"))
                .map(String::from),
        },
        "SnapshotDeviceData" => Incoming::SnapshotSegment {
            cross_ref: text("serviceCrossRefID").unwrap_or_default(),
            segment: text("segmentID").and_then(|s| s.parse().ok()).unwrap_or(0),
            last: text("lastSegment").as_deref() == Some("true"),
            calls: snapshot_calls(root),
        },
        "GetForwardingResponse" => Incoming::Forwarding {
            items: forwarding_items(root),
        },
        "GetDoNotDisturbResponse" => Incoming::DoNotDisturb {
            on: text("doNotDisturbOn").as_deref() == Some("true"),
        },
        "CSTAErrorCode" => Incoming::Error(csta_error(root)),
        name if name.ends_with("Response") => Incoming::Done {
            name: name.to_owned(),
        },
        name => Incoming::Unknown {
            name: name.to_owned(),
        },
    }
}

fn call_event(root: &Element, kind: CallEventKind, connection: &str, subject: &str) -> CallEvent {
    let destination = ["newDestination", "transferredToDevice", "addedParty"]
        .iter()
        .find_map(|name| device(root.child(name)));
    let list = root
        .child("transferredConnections")
        .or_else(|| root.child("conferenceConnections"));
    CallEvent {
        kind,
        cross_ref: root
            .child_text("monitorCrossRefID")
            .unwrap_or("")
            .to_owned(),
        connection: ConnectionId::read(root.child(connection)),
        subject: device(root.child(subject)),
        calling: device(root.child("callingDevice")),
        called: device(root.child("calledDevice")),
        last_redirection: device(root.child("lastRedirectionDevice")),
        destination,
        secondary_old: root
            .child("secondaryOldCall")
            .map(|e| ConnectionId::read(Some(e))),
        changes: list.map(connection_changes).unwrap_or_default(),
        local_state: root.child_text("localConnectionInfo").map(String::from),
        cause: root.child_text("cause").map(String::from),
    }
}

fn connection_changes(list: &Element) -> Vec<ConnectionChange> {
    list.children_named("connectionListItem")
        .map(|item| ConnectionChange {
            old: ConnectionId::read(item.child("oldConnection")),
            new: ConnectionId::read(item.child("newConnection")),
            endpoint: device(item.child("endpoint")),
        })
        .collect()
}

/// A device element's identifier: a `deviceIdentifier` child or the element's own text.
fn device(element: Option<&Element>) -> Option<String> {
    let element = element?;
    let text = element
        .child("deviceIdentifier")
        .map(|d| d.text.as_str())
        .unwrap_or(&element.text);
    (!text.is_empty()).then(|| text.to_owned())
}

fn snapshot_calls(root: &Element) -> Vec<SnapshotCall> {
    let Some(data) = root.find("snapshotData") else {
        return Vec::new();
    };
    data.children_named("snapshotDeviceResponseInfo")
        .map(|info| {
            let state = info.child("localCallState").map(|s| {
                s.find("localConnectionState")
                    .or_else(|| s.child("simpleCallState"))
                    .map(|e| e.text.clone())
                    .unwrap_or_else(|| "unknown".into())
            });
            SnapshotCall {
                connection: ConnectionId::read(info.child("connectionIdentifier")),
                state: state.unwrap_or_else(|| "unknown".into()),
            }
        })
        .collect()
}

/// The items of a `forwardingList`. Editions name the entry `forwardListItem` (ed3+) or
/// `forwardingListItem`, and the destination `forwardDN` or `forwardTo`.
fn forwarding_items(root: &Element) -> Vec<ForwardingItem> {
    let Some(list) = root.find("forwardingList") else {
        return Vec::new();
    };
    list.children
        .iter()
        .filter_map(|item| {
            Some(ForwardingItem {
                kind: item.child_text("forwardingType")?.to_owned(),
                on: item.child_text("forwardStatus") == Some("true"),
                to: device(item.child("forwardDN")).or_else(|| device(item.child("forwardTo"))),
            })
        })
        .collect()
}

fn csta_error(root: &Element) -> CstaError {
    match root.children.first() {
        Some(category) => CstaError {
            category: category.name.clone(),
            value: category.text.clone(),
        },
        None => CstaError {
            category: "unspecified".into(),
            value: String::new(),
        },
    }
}

/// How a forwarding rule is named in `SetForwarding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardingType {
    Immediate,
    Busy,
    NoAnswer,
}

impl ForwardingType {
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardingType::Immediate => "forwardImmediate",
            ForwardingType::Busy => "forwardBusy",
            ForwardingType::NoAnswer => "forwardNoAns",
        }
    }
}

/// A request tapir sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    StartApplicationSession {
        application_id: String,
        username: Option<String>,
        password: Option<String>,
        duration_s: u32,
    },
    ResetApplicationSessionTimer {
        session_id: String,
        duration_s: u32,
    },
    SystemStatusResponse,
    SystemRegister,
    /// Our status, sent to the switch as the OSV-style keep-alive.
    SystemStatus,
    MonitorStart {
        device: String,
    },
    SnapshotDevice {
        device: String,
    },
    MakeCall {
        from: String,
        to: String,
    },
    AnswerCall {
        call: ConnectionId,
    },
    ClearConnection {
        call: ConnectionId,
    },
    /// Clears every party of a call. tapir's model has no command for that (its Drop leaves
    /// one device's appearance, which is ClearConnection), so no command plans it yet.
    ClearCall {
        call: ConnectionId,
    },
    HoldCall {
        call: ConnectionId,
    },
    RetrieveCall {
        call: ConnectionId,
    },
    AlternateCall {
        held: ConnectionId,
        active: ConnectionId,
    },
    ConsultationCall {
        existing: ConnectionId,
        to: String,
    },
    TransferCall {
        held: ConnectionId,
        active: ConnectionId,
    },
    ConferenceCall {
        held: ConnectionId,
        active: ConnectionId,
    },
    SingleStepTransferCall {
        call: ConnectionId,
        to: String,
    },
    DeflectCall {
        call: ConnectionId,
        to: String,
    },
    DirectedPickupCall {
        call: ConnectionId,
        device: String,
    },
    SetForwarding {
        device: String,
        kind: ForwardingType,
        on: bool,
        to: Option<String>,
    },
    SetDoNotDisturb {
        device: String,
        on: bool,
    },
    GetForwarding {
        device: String,
    },
    GetDoNotDisturb {
        device: String,
    },
    /// The answer to the switch's own MonitorStop.
    MonitorStopResponse,
    GenerateDigits {
        call: ConnectionId,
        digits: String,
    },
}

impl Request {
    /// The root element's name.
    pub fn name(&self) -> &'static str {
        match self {
            Request::StartApplicationSession { .. } => "StartApplicationSession",
            Request::ResetApplicationSessionTimer { .. } => "ResetApplicationSessionTimer",
            Request::SystemStatusResponse => "SystemStatusResponse",
            Request::SystemRegister => "SystemRegister",
            Request::SystemStatus => "SystemStatus",
            Request::MonitorStart { .. } => "MonitorStart",
            Request::SnapshotDevice { .. } => "SnapshotDevice",
            Request::MakeCall { .. } => "MakeCall",
            Request::AnswerCall { .. } => "AnswerCall",
            Request::ClearConnection { .. } => "ClearConnection",
            Request::ClearCall { .. } => "ClearCall",
            Request::HoldCall { .. } => "HoldCall",
            Request::RetrieveCall { .. } => "RetrieveCall",
            Request::AlternateCall { .. } => "AlternateCall",
            Request::ConsultationCall { .. } => "ConsultationCall",
            Request::TransferCall { .. } => "TransferCall",
            Request::ConferenceCall { .. } => "ConferenceCall",
            Request::SingleStepTransferCall { .. } => "SingleStepTransferCall",
            Request::DeflectCall { .. } => "DeflectCall",
            Request::DirectedPickupCall { .. } => "DirectedPickupCall",
            Request::SetForwarding { .. } => "SetForwarding",
            Request::SetDoNotDisturb { .. } => "SetDoNotDisturb",
            Request::GetForwarding { .. } => "GetForwarding",
            Request::GetDoNotDisturb { .. } => "GetDoNotDisturb",
            Request::MonitorStopResponse => "MonitorStopResponse",
            Request::GenerateDigits { .. } => "GenerateDigits",
        }
    }

    /// The XML document, in namespace `ns` (application-session requests use ECMA-354's).
    pub fn to_xml(&self, ns: &str) -> String {
        let name = self.name();
        let ns = match self {
            Request::StartApplicationSession { .. }
            | Request::ResetApplicationSessionTimer { .. } => APPL_SESSION,
            _ => ns,
        };
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><{name} xmlns=\"{}\">",
            escape(ns)
        );
        self.write_body(&mut out);
        out.push_str(&format!("</{name}>"));
        out
    }

    fn write_body(&self, out: &mut String) {
        let text = |out: &mut String, name: &str, value: &str| {
            out.push_str(&format!("<{name}>{}</{name}>", escape(value)));
        };
        match self {
            Request::StartApplicationSession {
                application_id,
                username,
                password,
                duration_s,
            } => {
                out.push_str("<applicationInfo>");
                text(out, "applicationID", application_id);
                if let (Some(user), Some(password)) = (username, password) {
                    out.push_str("<applicationSpecificInfo><SessionLoginInfo>");
                    text(out, "userName", user);
                    text(out, "password", password);
                    out.push_str("</SessionLoginInfo></applicationSpecificInfo>");
                }
                out.push_str("</applicationInfo><requestedProtocolVersions>");
                for edition in ["ed4", "ed3", "ed5"] {
                    let version =
                        format!("http://www.ecma-international.org/standards/ecma-323/csta/{edition}");
                    text(out, "protocolVersion", &version);
                }
                out.push_str("</requestedProtocolVersions>");
                text(out, "requestedSessionDuration", &duration_s.to_string());
            }
            Request::ResetApplicationSessionTimer {
                session_id,
                duration_s,
            } => {
                text(out, "sessionID", session_id);
                text(out, "requestedSessionDuration", &duration_s.to_string());
            }
            Request::SystemStatusResponse | Request::MonitorStopResponse => {}
            Request::SystemStatus => text(out, "systemStatus", "normal"),
            Request::SystemRegister => out.push_str(
                "<requestTypes><systemStatus>true</systemStatus><requestSystemStatus>false</requestSystemStatus></requestTypes>",
            ),
            Request::MonitorStart { device } => {
                out.push_str("<monitorObject>");
                text(out, "deviceObject", device);
                out.push_str("</monitorObject><monitorType>device</monitorType>");
            }
            Request::SnapshotDevice { device } => text(out, "snapshotObject", device),
            Request::GetForwarding { device } | Request::GetDoNotDisturb { device } => {
                text(out, "device", device)
            }
            Request::MakeCall { from, to } => {
                text(out, "callingDevice", from);
                text(out, "calledDirectoryNumber", to);
                text(out, "autoOriginate", "doNotPrompt");
            }
            Request::AnswerCall { call } => call.write("callToBeAnswered", out),
            Request::ClearConnection { call } => call.write("connectionToBeCleared", out),
            Request::ClearCall { call } => call.write("callToBeCleared", out),
            Request::HoldCall { call } => call.write("callToBeHeld", out),
            Request::RetrieveCall { call } => call.write("callToBeRetrieved", out),
            Request::AlternateCall { held, active }
            | Request::TransferCall { held, active }
            | Request::ConferenceCall { held, active } => {
                held.write("heldCall", out);
                active.write("activeCall", out);
            }
            Request::ConsultationCall { existing, to } => {
                existing.write("existingCall", out);
                text(out, "consultedDevice", to);
            }
            Request::SingleStepTransferCall { call, to } => {
                call.write("activeCall", out);
                text(out, "transferredTo", to);
            }
            Request::DeflectCall { call, to } => {
                call.write("callToBeDiverted", out);
                text(out, "newDestination", to);
            }
            Request::DirectedPickupCall { call, device } => {
                call.write("callToBePickedUp", out);
                text(out, "requestingDevice", device);
            }
            Request::SetForwarding {
                device,
                kind,
                on,
                to,
            } => {
                text(out, "device", device);
                text(out, "forwardingType", kind.as_str());
                text(out, "activateForward", if *on { "true" } else { "false" });
                if let Some(to) = to {
                    text(out, "forwardDN", to);
                }
            }
            Request::GenerateDigits { call, digits } => {
                call.write("connectionToSendDigits", out);
                text(out, "charactersToSend", digits);
            }
            Request::SetDoNotDisturb { device, on } => {
                text(out, "device", device);
                text(out, "doNotDisturbOn", if *on { "true" } else { "false" });
            }
        }
    }
}

/// Hides the password of a StartApplicationSession for the protocol trace.
pub fn redact(xml: &str) -> String {
    match (xml.find("<password>"), xml.find("</password>")) {
        (Some(start), Some(end)) if start < end => {
            format!("{}<password>***{}", &xml[..start], &xml[end..])
        }
        _ => xml.to_owned(),
    }
}
