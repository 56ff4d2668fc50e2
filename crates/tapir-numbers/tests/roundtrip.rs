//! A number shown to a client and dialled back reaches the same destination:
//! `dialable(present(x)) == dialable(x)` for every format but raw, in every location.

mod common;

use common::plan;
use tapir_numbers::NumberFormat;

/// Valid numbers in each of the five countries, written in several ways, plus extensions.
const NUMBERS: &[&str] = &[
    "+49 30 3514911705",
    "+49 89 4531234",
    "+49 151 23456789",
    "+1 212 736 3100",
    "+1 416 597 5000",
    "+44 20 7219 3000",
    "+44 7911 123456",
    "+41 44 668 18 00",
    "+41 79 123 45 67",
    "+61 2 9250 7111",
    "+61 412 345 678",
    "+39 06 6982",
    "+33 1 42 68 53 00",
    "201",
    "12345",
];

#[test]
fn presented_numbers_dial_like_the_original() {
    for (name, location) in common::all() {
        for format in common::FORMATS {
            if format == NumberFormat::Raw {
                continue;
            }
            let plan = plan(location.clone(), format);
            for number in NUMBERS {
                let direct = plan.dialable(number).expect("table numbers are dialable");
                let shown = plan.present(number);
                assert_eq!(
                    plan.dialable(&shown).as_deref(),
                    Ok(direct.as_str()),
                    "{name}, {format:?}: {number:?} shown as {shown:?}"
                );
            }
        }
    }
}

#[test]
fn presenting_is_idempotent() {
    for (name, location) in common::all() {
        for format in common::FORMATS {
            let plan = plan(location.clone(), format);
            for number in NUMBERS {
                let once = plan.present(number);
                if format != NumberFormat::Raw {
                    assert_eq!(plan.present(&once), once, "{name}, {format:?}, {number:?}");
                }
            }
        }
    }
}

#[test]
fn dial_strings_present_as_the_number() {
    // What tapir dials, seen again in an event (a PBX echoing the dialled digits), shows as
    // the number itself. Only where the access code cannot be mistaken for the start of a
    // prefix: see `access_code_zero_is_ambiguous` for the others.
    for (name, location) in [
        ("new_york", common::new_york()),
        ("london", common::london()),
    ] {
        let plan = plan(location, NumberFormat::International);
        for number in NUMBERS {
            let dialled = plan.dialable(number).expect("table numbers are dialable");
            let expected = plan.present(number);
            assert_eq!(
                plan.present(&dialled),
                expected,
                "{name}: {number:?} → {dialled:?}"
            );
        }
    }
}

#[test]
fn access_code_zero_is_ambiguous() {
    // With access code 0 and international prefix 00, "0015123456789" is both the German
    // mobile 0151 23456789 behind the access code and the US number +1 512 345 6789. Both are
    // valid; the number as written wins, as in stored address books.
    let plan = plan(common::berlin(), NumberFormat::International);
    assert_eq!(plan.present("0015123456789"), "+15123456789");
    assert_eq!(plan.present("0 0151 23456789"), "+15123456789");
    // Unambiguous once the access code is not followed by the international prefix.
    assert_eq!(plan.present("015123456789"), "+4915123456789");
    assert_eq!(plan.present("00015123456789"), "+15123456789");
    // Where the reading as written is no valid number, the access code is split off.
    assert_eq!(plan.present("00303514911705"), "+49303514911705");
}
