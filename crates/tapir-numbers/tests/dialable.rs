//! `NumberPlan::dialable`: every usual way a client writes a number, and the exact string the
//! PBX gets; refused input with the reason.

mod common;

use common::plan;
use tapir_numbers::{DialError, Impossible, Location, NumberFormat};

/// Inputs that must all become `dial`.
struct Case {
    inputs: &'static [&'static str],
    dial: &'static str,
}

fn check(name: &str, location: Location, cases: &[Case]) {
    // The presentation format must not matter for dialling.
    for format in common::FORMATS {
        let plan = plan(location.clone(), format);
        for case in cases {
            for input in case.inputs {
                assert_eq!(
                    plan.dialable(input).as_deref(),
                    Ok(case.dial),
                    "{name}, {format:?}, input {input:?}"
                );
            }
        }
    }
}

/// Internal extensions and service codes pass unchanged (without formatting), whatever the
/// location.
fn check_pass_through(name: &str, location: Location) {
    let plan = plan(location, NumberFormat::International);
    for (input, dial) in [
        ("201", "201"),
        (" 2-01 ", "201"),
        ("12345", "12345"),
        ("0", "0"),
        ("112", "112"),
        ("*21*200#", "*21*200#"),
        ("#21#", "#21#"),
        ("*8 201", "*8201"),
    ] {
        assert_eq!(
            plan.dialable(input).as_deref(),
            Ok(dial),
            "{name}, {input:?}"
        );
    }
}

#[test]
fn germany_berlin() {
    check(
        "berlin",
        common::berlin(),
        &[
            Case {
                inputs: &[
                    "+49 (30) 3514911705",
                    "+49303514911705",
                    "+49 (0)30 3514911705",
                    "+49 30 3514911705",
                    "030 3514911705",
                    "030-351 491 17 05",
                    "030/3514911705",
                    "(030) 3514911705",
                    "030.3514.911705",
                    "3514911705",
                    "351 491 1705",
                    "0030 3514911705",
                    "00303514911705",
                    "0049 30 3514911705",
                    "00049 30 3514911705",
                    "49303514911705",
                ],
                dial: "00303514911705",
            },
            Case {
                inputs: &[
                    "+61 (2) 9250 7111",
                    "+61292507111",
                    "0061 2 9250 7111",
                    "00061292507111",
                    "61292507111",
                ],
                dial: "00061292507111",
            },
            Case {
                inputs: &["+49 (89) 4531234", "089 4531234", "0 089 4531234"],
                dial: "00894531234",
            },
        ],
    );
    check_pass_through("berlin", common::berlin());
}

#[test]
fn us_new_york() {
    check(
        "new_york",
        common::new_york(),
        &[
            Case {
                inputs: &[
                    "+1 (212) 736-3100",
                    "+12127363100",
                    "212-736-3100",
                    "(212) 736-3100",
                    "212.736.3100",
                    "1 212 736 3100",
                    "736-3100",
                    "9 1 212 736 3100",
                    "9 212 736 3100",
                    "9 736 3100",
                    "011 1 212 736 3100",
                ],
                dial: "912127363100",
            },
            Case {
                inputs: &[
                    "+49 (30) 3514911705",
                    "011 49 30 3514911705",
                    "9 011 49 30 3514911705",
                    "49303514911705",
                ],
                dial: "901149303514911705",
            },
            Case {
                inputs: &["+1 (416) 597-5000", "416 597 5000", "1-416-597-5000"],
                dial: "914165975000",
            },
        ],
    );
    check_pass_through("new_york", common::new_york());
}

#[test]
fn uk_london() {
    check(
        "london",
        common::london(),
        &[
            Case {
                inputs: &[
                    "+44 (20) 7219 3000",
                    "+442072193000",
                    "+44 (0)20 7219 3000",
                    "020 7219 3000",
                    "7219 3000",
                    "9 020 7219 3000",
                    "9 7219 3000",
                    "0044 20 7219 3000",
                    "9 0044 20 7219 3000",
                ],
                dial: "902072193000",
            },
            Case {
                inputs: &[
                    "+41 (44) 668 18 00",
                    "0041 44 668 18 00",
                    "9 0041 44 668 18 00",
                ],
                dial: "90041446681800",
            },
        ],
    );
    check_pass_through("london", common::london());
}

#[test]
fn switzerland_zurich() {
    check(
        "zurich",
        common::zurich(),
        &[
            Case {
                inputs: &[
                    "+41 (44) 668 18 00",
                    "+41446681800",
                    "044 668 18 00",
                    "668 18 00",
                    "0 044 668 18 00",
                    "0041 44 668 18 00",
                    "0 0041 44 668 18 00",
                ],
                dial: "00446681800",
            },
            Case {
                inputs: &[
                    "+44 (20) 7219 3000",
                    "0044 20 7219 3000",
                    "00044 20 7219 3000",
                ],
                dial: "000442072193000",
            },
        ],
    );
    check_pass_through("zurich", common::zurich());
}

#[test]
fn australia_sydney() {
    check(
        "sydney",
        common::sydney(),
        &[
            Case {
                inputs: &[
                    "+61 (2) 9250 7111",
                    "+61292507111",
                    "(02) 9250 7111",
                    "9250 7111",
                    "0 02 9250 7111",
                    "0011 61 2 9250 7111",
                    "0 0011 61 2 9250 7111",
                ],
                dial: "00292507111",
            },
            Case {
                inputs: &[
                    "+49 (30) 3514911705",
                    "0011 49 30 3514911705",
                    "0 0011 49 30 3514911705",
                ],
                dial: "0001149303514911705",
            },
        ],
    );
    check_pass_through("sydney", common::sydney());
}

#[test]
fn refused_characters_name_their_position() {
    let plan = plan(common::berlin(), NumberFormat::International);
    for (input, character, position) in [
        ("030 3514911705 ext", 'e', 15),
        ("0301234W5", 'W', 7),
        ("0301234w5", 'w', 7),
        ("+49 30 35,14", ',', 9),
        ("030!1", '!', 3),
        ("030@1", '@', 3),
        ("030$1", '$', 3),
        ("030?1", '?', 3),
        ("0301;", ';', 4),
        ("T0301", 'T', 0),
        ("P0301", 'P', 0),
        ("+49+30", '+', 3),
        ("0+49", '+', 1),
        ("+49 30 *21#", '*', 7),
        ("030|123", '|', 3),
        ("030^Hans", '^', 3),
        ("03ä1", 'ä', 2),
        ("😀201", '😀', 0),
        ("20😀1", '😀', 2),
        ("201\u{0}", '\u{0}', 3),
        ("tel:+4930", 't', 0),
        ("A", 'A', 0),
    ] {
        assert_eq!(
            plan.dialable(input),
            Err(DialError::InvalidCharacter {
                character,
                position
            }),
            "{input:?}"
        );
    }
}

#[test]
fn empty_input_is_refused() {
    let plan = plan(common::berlin(), NumberFormat::International);
    for input in ["", " ", "\t\n", "()", " - / . ", "+", " + "] {
        assert_eq!(plan.dialable(input), Err(DialError::Empty), "{input:?}");
    }
}

#[test]
fn impossible_numbers_are_refused_with_the_reason() {
    let plan = plan(common::berlin(), NumberFormat::International);
    for (input, reason) in [
        ("+49 1", Impossible::TooShort),
        ("+1 212 736", Impossible::TooShort),
        ("+1 212 736 3100 1", Impossible::TooLong),
        ("+44 20 7219 3000 0000", Impossible::TooLong),
        ("+41 44 668 18 00 0", Impossible::InvalidLength),
        ("+999 123 456 789", Impossible::UnknownCountryCode),
        ("0 1234567890123456789012345678901", Impossible::TooLong),
    ] {
        let result = plan.dialable(input);
        assert_eq!(
            result,
            Err(DialError::Invalid {
                number: input.to_owned(),
                reason
            }),
            "{input:?}"
        );
    }
}

#[test]
fn subscriber_numbers_need_an_area_code() {
    let mut location = common::berlin();
    location.area_code = None;
    let plan = plan(location, NumberFormat::International);
    assert_eq!(
        plan.dialable("3514911705"),
        Err(DialError::Invalid {
            number: "3514911705".into(),
            reason: Impossible::Incomplete
        })
    );
    assert_eq!(
        plan.dialable("030 3514911705").as_deref(),
        Ok("00303514911705")
    );
}

#[test]
fn without_access_code_nothing_is_prepended() {
    let mut location = common::berlin();
    location.access_code = Some(String::new());
    let plan = plan(location, NumberFormat::International);
    assert_eq!(
        plan.dialable("+49 30 3514911705").as_deref(),
        Ok("0303514911705")
    );
    assert_eq!(
        plan.dialable("+61 2 9250 7111").as_deref(),
        Ok("0061292507111")
    );
    assert_eq!(plan.dialable("3514911705").as_deref(), Ok("0303514911705"));
}
