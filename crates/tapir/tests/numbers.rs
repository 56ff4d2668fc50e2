//! Number formats end to end: numbers in events are presented in the instance's format, and
//! numbers clients dial reach the PBX in the form it needs.

mod common;

use common::{Server, line_of, post_json, wait_for_call};
use serde_json::json;

fn berlin(format: &str) -> String {
    format!(
        "[[instances]]\nname = \"berlin\"\nnumber_format = \"{format}\"\n\
         [instances.location]\ncountry = \"DE\"\narea_code = \"30\"\naccess_code = \"0\"\n\
         [instances.driver]\ntype = \"sim\"\nextensions = 5\nfirst_extension = 201\n"
    )
}

#[tokio::test]
async fn numbers_are_presented_and_dialled_in_the_instances_format() {
    let server = Server::with_config(&berlin("international"));
    let l201 = line_of(&server, "201").await;
    let l202 = line_of(&server, "202").await;

    // An outside caller as the PBX reports it: national, with the access code.
    server.cli_ok(&["sim", "call", "201", "--from", "0030 12345678"]);
    let incoming = wait_for_call(&server, "ringing at 201", |c| c.line == l201).await;
    assert_eq!(
        incoming.caller.number.as_deref(),
        Some("+493012345678"),
        "{incoming:?}"
    );
    assert_eq!(
        incoming.called.number.as_deref(),
        Some("201"),
        "extensions stay extensions"
    );

    // A client dials TAPI canonical form; the PBX gets access code + national number, and
    // the event shows it in international form again.
    let (status, body) = post_json(
        &server,
        &server.api(&format!("/lines/{l202}/calls")),
        json!({"to": "+49 (30) 3514911705"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let call = body["call"].as_u64().unwrap();
    let outbound = wait_for_call(&server, "dialled", |c| c.id == call).await;
    assert_eq!(
        outbound.called.number.as_deref(),
        Some("+49303514911705"),
        "{outbound:?}"
    );

    let (status, body) = post_json(
        &server,
        &server.api(&format!("/lines/{l202}/calls")),
        json!({"to": "030 35x14"}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("invalid_address")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("position 7"),
        "{body}"
    );
}

#[tokio::test]
async fn the_phonebook_format_writes_numbers_as_dialled_at_home() {
    let server = Server::with_config(&berlin("phonebook"));
    let l203 = line_of(&server, "203").await;
    server.cli_ok(&["sim", "call", "203", "--from", "+61 2 9250 7111"]);
    let abroad = wait_for_call(&server, "ringing at 203", |c| c.line == l203).await;
    assert_eq!(abroad.caller.number.as_deref(), Some("0061292507111"));
}
