//! Call control: make call by third-party call control (sip-testbed.md §4) and drop through
//! Kamailio's JSON-RPC.
//!
//! Make call, as one INVITE dialog of the provider's own: INVITE the line's phone with
//! `Call-Info: <sip:domain>;answer-after=0` and `Alert-Info` (as its phone type says), ACK its 200
//! (rsipstack does), REFER it in the dialog to the destination, answer the NOTIFYs and read
//! their `message/sipfrag` until a final status, then BYE. The command succeeds when the
//! sipfrag says 2xx.

use std::time::Duration;

use rsipstack::dialog::dialog::DialogState;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::sip::{Header, StatusCode};
use tapir_model::{ErrorKind, TapiError};
use tokio::time::{Instant, timeout, timeout_at};

use crate::rpc::Rpc;
use crate::stack::{Stack, uri};
use crate::status::{Failure, error_for_status};

/// What one made call needs to know.
#[derive(Debug, Clone)]
pub struct MakeCall {
    /// The line's address of record: its phone is called first.
    pub line: String,
    /// The line's number, for messages.
    pub number: String,
    /// Where the phone is sent, e.g. `sip:203@127.0.0.1`.
    pub destination: String,
    pub controller: String,
    pub domain: String,
    /// `Alert-Info` for the phone; empty for none.
    pub alert_info: String,
    /// Whether the INVITE carries `Call-Info: answer-after=0`.
    pub answer_after: bool,
    pub answer_timeout: Duration,
    pub limit: Duration,
}

/// Carries out a made call; `Ok` once the phone's transfer reported 2xx.
pub async fn make_call(stack: &Stack, call: MakeCall) -> Result<(), TapiError> {
    let phone = format!("the phone of {}", call.number);
    let failed = |f: Failure, what: &str| f.to_error(what);
    let controller = uri(&format!("sip:{}@{}", call.controller, call.domain))
        .map_err(|f| failed(f, "INVITE"))?;
    let mut headers = Vec::new();
    if call.answer_after {
        headers.push(Header::CallInfo(
            format!("<sip:{}>;answer-after=0", call.domain).into(),
        ));
    }
    if !call.alert_info.is_empty() {
        headers.push(Header::AlertInfo(call.alert_info.clone().into()));
    }
    stack.ensure_link().await.map_err(|f| failed(f, "INVITE"))?;
    let local = stack.local().ip();
    let sdp = format!(
        "v=0\r\no=tapir 1 1 IN IP4 {local}\r\ns=tapir\r\nc=IN IP4 {local}\r\nt=0 0\r\n\
         m=audio 9 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n"
    );
    let option = InviteOption {
        caller: controller.clone(),
        callee: uri(&call.line).map_err(|f| failed(f, "INVITE"))?,
        destination: Some(stack.registrar()),
        content_type: Some("application/sdp".into()),
        offer: Some(sdp.into_bytes()),
        contact: stack
            .contact(&call.controller)
            .map_err(|f| failed(f, "INVITE"))?,
        credential: stack.credential(),
        headers: Some(headers),
        ..InviteOption::default()
    };
    let (state_tx, mut states) = stack.dialogs.new_dialog_state_channel();
    let invited = timeout(
        call.answer_timeout,
        stack.dialogs.do_invite(option, state_tx),
    )
    .await;
    let (dialog, response) = match invited {
        Err(_) => {
            return Err(Failure::Timeout(format!("{phone} did not answer")).to_error("INVITE"));
        }
        Ok(Err(rsipstack::Error::DialogError(reason, _, code))) => {
            return Err(error_for_status(code.code(), &reason, &phone));
        }
        Ok(Err(error)) => {
            return Err(
                Failure::Transport(error.to_string()).to_error(&format!("INVITE to {phone}"))
            );
        }
        Ok(Ok(answer)) => answer,
    };
    let code = response.as_ref().map_or(0, |r| r.status_code.code());
    if !(200..300).contains(&code) {
        stack.dialogs.remove_dialog(&dialog.id());
        let reason = response.and_then(|r| r.wire_reason).unwrap_or_default();
        return Err(error_for_status(code, &reason, &phone));
    }
    let target = format!("the call to {}", call.destination);
    let referred = dialog
        .refer(
            format!("<{}>", call.destination),
            Some(vec![Header::ReferredBy(format!("<{controller}>").into())]),
            None,
        )
        .await;
    let outcome = match referred {
        Err(error) => Err(Failure::Transport(error.to_string()).to_error("REFER")),
        Ok(None) => Err(Failure::Timeout("REFER".into()).to_error("REFER")),
        Ok(Some(response)) if response.status_code.code() >= 300 => Err(error_for_status(
            response.status_code.code(),
            response.wire_reason.as_deref().unwrap_or(""),
            &format!("REFER of {phone}"),
        )),
        Ok(Some(_)) => follow_transfer(&mut states, call.answer_timeout, &target).await,
    };
    let ended_by_phone = matches!(dialog.state(), DialogState::Terminated(..));
    if !ended_by_phone && let Err(error) = timeout(call.limit, dialog.bye()).await.unwrap_or(Ok(()))
    {
        tracing::debug!(%error, "BYE to the phone after the transfer");
    }
    stack.dialogs.remove_dialog(&dialog.id());
    outcome
}

/// Answers the REFER's NOTIFYs until their sipfrag carries a final status.
async fn follow_transfer(
    states: &mut rsipstack::dialog::dialog::DialogStateReceiver,
    limit: Duration,
    target: &str,
) -> Result<(), TapiError> {
    let deadline = Instant::now() + limit;
    loop {
        let state = match timeout_at(deadline, states.recv()).await {
            Err(_) => return Err(Failure::Timeout("no final NOTIFY".into()).to_error(target)),
            Ok(None) => {
                return Err(TapiError::new(
                    ErrorKind::OutcomeUnknown,
                    format!("{target}: the dialog with the phone went away"),
                ));
            }
            Ok(Some(state)) => state,
        };
        match state {
            DialogState::Notify(_, request, handle) => {
                if let Err(error) = handle.reply(StatusCode::OK).await {
                    tracing::debug!(%error, "answering the REFER NOTIFY");
                }
                match sipfrag_status(&request.body) {
                    Some((code, _)) if code < 200 => {}
                    Some((code, _)) if code < 300 => return Ok(()),
                    Some((code, reason)) => return Err(error_for_status(code, &reason, target)),
                    None => tracing::warn!(
                        body = %String::from_utf8_lossy(&request.body),
                        "REFER NOTIFY without a readable sipfrag, ignored"
                    ),
                }
            }
            DialogState::Terminated(_, reason) => {
                return Err(TapiError::new(
                    ErrorKind::OutcomeUnknown,
                    format!("{target}: the phone ended the dialog before reporting ({reason:?})"),
                ));
            }
            _ => {}
        }
    }
}

/// The status of a `message/sipfrag` body: its first line, `SIP/2.0 200 OK`.
pub fn sipfrag_status(body: &[u8]) -> Option<(u16, String)> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    let mut parts = line.trim().splitn(3, ' ');
    if !parts.next()?.eq_ignore_ascii_case("SIP/2.0") {
        return None;
    }
    let code: u16 = parts.next()?.parse().ok()?;
    if !(100..700).contains(&code) {
        return None;
    }
    Some((code, parts.next().unwrap_or("").to_owned()))
}

/// Ends the dialog with `call_id` through `dlg.end_dlg` (BYE to both legs).
pub async fn end_dialog(rpc: &Rpc, call_id: &str) -> Result<(), TapiError> {
    let failed =
        |e: crate::rpc::RpcError| TapiError::new(ErrorKind::OperationFailed, e.to_string());
    let list = rpc.dlg_list().await.map_err(failed)?;
    let Some(entry) = list.iter().find(|d| d.call_id == call_id) else {
        return Err(TapiError::new(
            ErrorKind::OperationFailed,
            format!("Kamailio tracks no dialog with Call-ID {call_id}"),
        ));
    };
    rpc.end_dlg(entry).await.map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sipfrags_are_read() {
        assert_eq!(
            sipfrag_status(b"SIP/2.0 200 OK\r\n"),
            Some((200, "OK".into()))
        );
        assert_eq!(
            sipfrag_status(b"SIP/2.0 100 Trying"),
            Some((100, "Trying".into()))
        );
        assert_eq!(
            sipfrag_status(b"\r\nSIP/2.0 486 Busy Here\r\nVia: x\r\n"),
            Some((486, "Busy Here".into()))
        );
        assert_eq!(sipfrag_status(b"HTTP/1.1 200 OK"), None);
        assert_eq!(sipfrag_status(b"SIP/2.0 abc"), None);
        assert_eq!(sipfrag_status(b"\xff"), None);
        assert_eq!(sipfrag_status(b""), None);
    }
}
