//! Answer, hold and resume through the line's phone, for phone types that take a remote
//! control request (`RemoteControl`): SIP itself has no request that makes a phone answer.
//!
//! The request goes to the line's address of record through the registrar, which forwards
//! it to the phone's registered contact, as the INVITE of a made call does. It carries the
//! Call-ID of the call it is about, without tags: out of dialog for routing (the provider is
//! not in the phone's dialog and does not know its route set), while a phone that looks at
//! the Call-ID knows the call; the others act on their ringing (answer), active (hold) or
//! held (resume) call.
//!
//! - `notify_talk`: NOTIFY with `Event: talk` answers or resumes, `Event: hold` holds.
//! - `uacsta`: INFO with an ECMA-323 `AnswerCall`, `HoldCall` or `RetrieveCall` body
//!   (`application/csta+xml`, ECMA TR/87). The phone's CSTA answer is in the body of its
//!   2xx; a `CSTAErrorCode` there is a refusal.
//!
//! Success here only means the phone took the request; the owner loop decides when the
//! command is done (see `session`).

use std::time::Duration;

use quick_xml::Reader;
use quick_xml::escape::escape;
use quick_xml::events::Event;
use rsipstack::sip::{Header, Method};
use tapir_model::{ErrorKind, TapiError};

use crate::config::RemoteControl;
use crate::stack::{Stack, uri};
use crate::status::error_for_status;

/// The namespace of the uaCSTA bodies. Phones read CSTA by local name; ed4 is what snom's
/// templates use (Yealink's firmware speaks ed5 and takes ed4).
const CSTA_NAMESPACE: &str = "http://www.ecma-international.org/standards/ecma-323/csta/ed4";

/// What the phone is asked to do with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneAction {
    Answer,
    Hold,
    Resume,
}

impl PhoneAction {
    /// The command's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            PhoneAction::Answer => "answer",
            PhoneAction::Hold => "hold",
            PhoneAction::Resume => "unhold",
        }
    }

    /// The Broadsoft remote control event that asks for it.
    fn talk_event(self) -> &'static str {
        match self {
            PhoneAction::Answer | PhoneAction::Resume => "talk",
            PhoneAction::Hold => "hold",
        }
    }

    /// The CSTA service and the element naming its connection.
    fn csta_service(self) -> (&'static str, &'static str) {
        match self {
            PhoneAction::Answer => ("AnswerCall", "callToBeAnswered"),
            PhoneAction::Hold => ("HoldCall", "callToBeHeld"),
            PhoneAction::Resume => ("RetrieveCall", "callToBeRetrieved"),
        }
    }
}

/// One request to a line's phone.
#[derive(Debug, Clone)]
pub struct PhoneRequest {
    /// The line's address of record (the request's target, and the CSTA device).
    pub line: String,
    /// The line's number, for messages.
    pub number: String,
    pub controller: String,
    pub domain: String,
    pub control: RemoteControl,
    pub action: PhoneAction,
    /// The SIP Call-ID of the call on the phone.
    pub call_id: String,
    pub limit: Duration,
}

/// Sends the request; `Ok` once the phone answered it with 2xx (and no CSTA error).
pub async fn ask_phone(stack: &Stack, request: PhoneRequest) -> Result<(), TapiError> {
    let phone = format!("the phone of {}", request.number);
    let (method, headers, body) = match request.control {
        RemoteControl::None => {
            return Err(TapiError::new(
                ErrorKind::OperationUnavailable,
                format!("{phone} takes no remote control"),
            ));
        }
        RemoteControl::NotifyTalk => (
            Method::Notify,
            vec![
                Header::Event(request.action.talk_event().into()),
                Header::SubscriptionState("active".into()),
            ],
            Vec::new(),
        ),
        RemoteControl::Uacsta => (
            Method::Info,
            vec![
                Header::ContentType("application/csta+xml".into()),
                Header::ContentDisposition("signal;handling=required".into()),
            ],
            csta_request(request.action, &request.call_id, &request.line).into_bytes(),
        ),
    };
    let what = format!("{} of {phone} ({method})", request.action.name());
    let failed = |f: crate::status::Failure| f.to_error(&what);
    let line = uri(&request.line).map_err(failed)?;
    let controller =
        uri(&format!("sip:{}@{}", request.controller, request.domain)).map_err(failed)?;
    let mut sip = stack
        .new_request(
            method,
            line.clone(),
            controller,
            line,
            Some(request.call_id.clone()),
        )
        .await
        .map_err(failed)?;
    let contact = stack.contact(&request.controller).map_err(failed)?;
    sip.headers.extend(headers);
    sip.headers
        .push(Header::Contact(format!("<{contact}>").into()));
    sip.headers
        .push(Header::ContentLength((body.len() as u32).into()));
    sip.body = body;
    let (response, _) = stack.send(sip, request.limit).await.map_err(failed)?;
    let code = response.status_code.code();
    if !(200..300).contains(&code) {
        let reason = response.wire_reason.unwrap_or_default();
        return Err(error_for_status(code, &reason, &what));
    }
    if let Some(error) = csta_error(&response.body) {
        return Err(TapiError::new(
            ErrorKind::OperationFailed,
            format!("{what}: the phone answered CSTAErrorCode {error}"),
        ));
    }
    Ok(())
}

/// The ECMA-323 request for `action` on the connection of `device` in call `call_id`.
fn csta_request(action: PhoneAction, call_id: &str, device: &str) -> String {
    let (service, connection) = action.csta_service();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><{service} xmlns=\"{CSTA_NAMESPACE}\">\
         <{connection}><callID>{}</callID><deviceID>{}</deviceID></{connection}></{service}>",
        escape(call_id),
        escape(device)
    )
}

/// The error a `CSTAErrorCode` body names (`operation: invalidCallID`); `None` for any other
/// body, an empty one or one that is not XML (a phone may answer 200 with nothing).
fn csta_error(body: &[u8]) -> Option<String> {
    let mut reader = Reader::from_reader(body);
    let mut buf = Vec::new();
    let mut in_error = false;
    let mut kind: Option<String> = None;
    loop {
        match reader.read_event_into(&mut buf).ok()? {
            Event::Start(start) | Event::Empty(start) => {
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                if !in_error {
                    if name != "CSTAErrorCode" {
                        return None;
                    }
                    in_error = true;
                } else if kind.is_none() {
                    kind = Some(name);
                }
            }
            Event::Text(text) if kind.is_some() => {
                let value = text.decode().ok()?.trim().to_owned();
                if !value.is_empty() {
                    return Some(format!("{}: {value}", kind.unwrap_or_default()));
                }
            }
            Event::Eof => return in_error.then(|| kind.unwrap_or_else(|| "unspecified".into())),
            _ => {}
        }
        buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csta_requests_name_the_call_and_the_device() {
        assert_eq!(
            csta_request(PhoneAction::Answer, "a<b@host", "sip:250@127.0.0.1"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><AnswerCall xmlns=\"http://www.ecma-international.org/standards/ecma-323/csta/ed4\">\
             <callToBeAnswered><callID>a&lt;b@host</callID><deviceID>sip:250@127.0.0.1</deviceID></callToBeAnswered></AnswerCall>"
        );
        assert!(csta_request(PhoneAction::Hold, "c", "d").contains("<HoldCall "));
        assert!(csta_request(PhoneAction::Hold, "c", "d").contains("<callToBeHeld>"));
        assert!(csta_request(PhoneAction::Resume, "c", "d").contains("<callToBeRetrieved>"));
    }

    #[test]
    fn csta_errors_are_read_from_the_answer() {
        let error = b"<?xml version=\"1.0\"?><CSTAErrorCode xmlns=\"http://www.ecma-international.org/standards/ecma-323/csta/ed5\">\
            <stateIncompatibility>noCallToAnswer</stateIncompatibility></CSTAErrorCode>";
        assert_eq!(
            csta_error(error).as_deref(),
            Some("stateIncompatibility: noCallToAnswer")
        );
        assert_eq!(
            csta_error(b"<CSTAErrorCode><unspecified/></CSTAErrorCode>").as_deref(),
            Some("unspecified")
        );
        assert_eq!(csta_error(b"<AnswerCallResponse xmlns=\"x\"/>"), None);
        assert_eq!(csta_error(b""), None);
        assert_eq!(csta_error(b"not xml <"), None);
    }
}
