//! `NumberPlan::present`: numbers as PBXs send them, shown in each of the five formats.

mod common;

use common::plan;
use tapir_numbers::{Location, NumberFormat};

/// Inputs that all stand for one number, and that number in each format (international,
/// international without plus, phonebook, phonebook international).
struct Case {
    inputs: &'static [&'static str],
    shown: [&'static str; 4],
}

fn check(name: &str, location: Location, cases: &[Case]) {
    for (index, format) in common::FORMATS.iter().enumerate() {
        let plan = plan(location.clone(), *format);
        for case in cases {
            for input in case.inputs {
                let expected = case.shown.get(index).copied().unwrap_or(input);
                assert_eq!(
                    plan.present(input),
                    expected,
                    "{name}, {format:?}, input {input:?}"
                );
            }
        }
    }
}

/// Inputs that are shown the same in every format but raw: extensions and junk.
fn check_unchanged(name: &str, location: Location, cases: &[(&str, &str)]) {
    for format in common::FORMATS {
        let plan = plan(location.clone(), format);
        for (input, expected) in cases {
            let expected = if format == NumberFormat::Raw {
                input
            } else {
                expected
            };
            assert_eq!(
                plan.present(input),
                *expected,
                "{name}, {format:?}, input {input:?}"
            );
        }
    }
}

/// Extensions, junk and impossible numbers, the same for every location.
const UNCHANGED: &[(&str, &str)] = &[
    ("201", "201"),
    (" 201 ", "201"),
    ("12345", "12345"),
    ("0", "0"),
    ("", ""),
    ("   ", ""),
    ("anonymous", "anonymous"),
    (" Unknown ", "Unknown"),
    ("*21*200#", "*21*200#"),
    ("sip:201@pbx", "sip:201@pbx"),
    ("+", "+"),
    ("+12", "+12"),
    ("+999 123456789", "+999 123456789"),
    (
        "+49 30 3514911705 123456789012",
        "+49 30 3514911705 123456789012",
    ),
    ("12a45678", "12a45678"),
    ("😀", "😀"),
];

#[test]
fn germany_berlin() {
    check(
        "berlin",
        common::berlin(),
        &[
            Case {
                inputs: &[
                    "0303514911705",
                    "00303514911705",
                    "3514911705",
                    "+49303514911705",
                    "0049303514911705",
                    "00049303514911705",
                    "+49 (30) 3514911705",
                    "+49 (0)30 3514911705",
                    "030 / 351 49 117-05",
                    "49303514911705",
                ],
                shown: [
                    "+49303514911705",
                    "49303514911705",
                    "0303514911705",
                    "0049303514911705",
                ],
            },
            Case {
                inputs: &[
                    "+61292507111",
                    "0061292507111",
                    "00061292507111",
                    "+61 (2) 9250 7111",
                ],
                shown: [
                    "+61292507111",
                    "61292507111",
                    "0061292507111",
                    "0061292507111",
                ],
            },
            Case {
                inputs: &["089 4531234", "0 089 4531234", "+49894531234"],
                shown: ["+49894531234", "49894531234", "0894531234", "0049894531234"],
            },
        ],
    );
    check_unchanged("berlin", common::berlin(), UNCHANGED);
}

#[test]
fn us_new_york() {
    check(
        "new_york",
        common::new_york(),
        &[
            Case {
                inputs: &[
                    "2127363100",
                    "12127363100",
                    "912127363100",
                    "7363100",
                    "97363100",
                    "+12127363100",
                    "+1 (212) 736-3100",
                    "011 1 212 736 3100",
                ],
                shown: [
                    "+12127363100",
                    "12127363100",
                    "12127363100",
                    "01112127363100",
                ],
            },
            Case {
                inputs: &[
                    "+49303514911705",
                    "01149303514911705",
                    "901149303514911705",
                    "49303514911705",
                ],
                shown: [
                    "+49303514911705",
                    "49303514911705",
                    "01149303514911705",
                    "01149303514911705",
                ],
            },
            Case {
                // Canada shares +1: a national call from the US.
                inputs: &["+1 416 597 5000", "1 416 597 5000", "9 1 416 597 5000"],
                shown: [
                    "+14165975000",
                    "14165975000",
                    "14165975000",
                    "01114165975000",
                ],
            },
        ],
    );
    check_unchanged("new_york", common::new_york(), UNCHANGED);
}

#[test]
fn uk_london() {
    check(
        "london",
        common::london(),
        &[
            Case {
                inputs: &[
                    "02072193000",
                    "902072193000",
                    "72193000",
                    "972193000",
                    "+442072193000",
                    "+44 (20) 7219 3000",
                    "+44 (0)20 7219 3000",
                    "00442072193000",
                    "900442072193000",
                ],
                shown: [
                    "+442072193000",
                    "442072193000",
                    "02072193000",
                    "00442072193000",
                ],
            },
            Case {
                inputs: &["+41446681800", "0041446681800", "90041446681800"],
                shown: [
                    "+41446681800",
                    "41446681800",
                    "0041446681800",
                    "0041446681800",
                ],
            },
        ],
    );
    check_unchanged("london", common::london(), UNCHANGED);
}

#[test]
fn switzerland_zurich() {
    check(
        "zurich",
        common::zurich(),
        &[
            Case {
                inputs: &[
                    "0446681800",
                    "00446681800",
                    "6681800",
                    "+41446681800",
                    "+41 (44) 668 18 00",
                    "0041446681800",
                    "00041446681800",
                    "044 668 18 00",
                ],
                shown: ["+41446681800", "41446681800", "0446681800", "0041446681800"],
            },
            Case {
                inputs: &["+442072193000", "00442072193000", "000442072193000"],
                shown: [
                    "+442072193000",
                    "442072193000",
                    "00442072193000",
                    "00442072193000",
                ],
            },
        ],
    );
    check_unchanged("zurich", common::zurich(), UNCHANGED);
}

#[test]
fn australia_sydney() {
    check(
        "sydney",
        common::sydney(),
        &[
            Case {
                inputs: &[
                    "0292507111",
                    "00292507111",
                    "92507111",
                    "+61292507111",
                    "+61 (2) 9250 7111",
                    "001161292507111",
                    "0001161292507111",
                    "02 9250 7111",
                ],
                shown: [
                    "+61292507111",
                    "61292507111",
                    "0292507111",
                    "001161292507111",
                ],
            },
            Case {
                inputs: &[
                    "+49303514911705",
                    "001149303514911705",
                    "0001149303514911705",
                ],
                shown: [
                    "+49303514911705",
                    "49303514911705",
                    "001149303514911705",
                    "001149303514911705",
                ],
            },
        ],
    );
    check_unchanged("sydney", common::sydney(), UNCHANGED);
}

#[test]
fn raw_keeps_even_whitespace() {
    let plan = plan(common::berlin(), NumberFormat::Raw);
    for input in [" 030 3514911705 ", "", "anonymous", "\t201"] {
        assert_eq!(plan.present(input), input);
    }
}

#[test]
fn without_area_code_subscriber_numbers_stay_unchanged() {
    let mut location = common::berlin();
    location.area_code = None;
    let plan = plan(location, NumberFormat::International);
    assert_eq!(plan.present("0303514911705"), "+49303514911705");
    // Germans always write the national prefix, so this cannot be completed.
    assert_eq!(plan.present("3514911705"), "3514911705");
}
