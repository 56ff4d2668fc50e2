//! `NumberPlan::new` and the config types: defaults from the metadata, refused locations,
//! and the internal/external boundary.

mod common;

use common::plan;
use tapir_numbers::{Location, NumberFormat, NumberPlan, PlanError};

#[test]
fn prefixes_default_from_the_metadata() {
    for (country, national, international) in [
        ("DE", "0", "00"),
        ("US", "1", "011"),
        ("GB", "0", "00"),
        ("CH", "0", "00"),
        ("AU", "0", "0011"),
        ("IT", "", "00"),
        ("ca", "1", "011"),
    ] {
        let plan = plan(Location::new(country), NumberFormat::International);
        assert_eq!(plan.national_prefix(), national, "{country}");
        assert_eq!(plan.international_prefix(), international, "{country}");
    }
}

#[test]
fn configured_prefixes_win() {
    let mut location = common::berlin();
    location.international_prefix = Some("000".into());
    let plan = plan(location, NumberFormat::PhonebookInternational);
    assert_eq!(plan.present("+61 2 9250 7111"), "00061292507111");
    assert_eq!(
        plan.dialable("+61 2 9250 7111").as_deref(),
        Ok("000061292507111")
    );
}

/// A change to the Berlin location.
type Edit = fn(&mut Location);

#[test]
fn bad_locations_are_refused_naming_the_problem() {
    let with = |edit: Edit| {
        let mut location = common::berlin();
        edit(&mut location);
        NumberPlan::new(location, NumberFormat::International)
    };
    let unknown = |country: &str| PlanError::UnknownCountry {
        country: country.into(),
    };
    let not_digits = |field, value: &str| PlanError::NotDigits {
        field,
        value: value.into(),
    };
    let cases: Vec<(Edit, PlanError)> = vec![
        (|l| l.country = "XX".into(), unknown("XX")),
        (|l| l.country = "DEU".into(), unknown("DEU")),
        (|l| l.country = "001".into(), unknown("001")),
        (|l| l.country = String::new(), unknown("")),
        (
            |l| l.area_code = Some("3O".into()),
            not_digits("area_code", "3O"),
        ),
        (
            |l| l.access_code = Some("+".into()),
            not_digits("access_code", "+"),
        ),
        (
            |l| l.national_prefix = Some("O".into()),
            not_digits("national_prefix", "O"),
        ),
        (
            |l| l.international_prefix = Some("00-".into()),
            not_digits("international_prefix", "00-"),
        ),
        (
            |l| l.area_code = Some("030".into()),
            PlanError::AreaCodeWithNationalPrefix {
                area_code: "030".into(),
                national_prefix: "0".into(),
            },
        ),
        (
            |l| l.internal_max_digits = 11,
            PlanError::InternalMaxDigits { value: 11, max: 10 },
        ),
    ];
    for (edit, expected) in cases {
        assert_eq!(with(edit), Err(expected.clone()), "{expected}");
    }
}

#[test]
fn errors_read_well() {
    let error = PlanError::NotDigits {
        field: "access_code",
        value: "x".into(),
    };
    assert_eq!(
        error.to_string(),
        "access_code must contain only the digits 0-9, got \"x\""
    );
}

#[test]
fn location_reads_from_config_with_defaults() {
    let location: Location = toml::from_str("country = \"DE\"").expect("minimal location");
    assert_eq!(location, Location::new("DE"));
    assert_eq!(location.internal_max_digits, 5);

    let full: Location = toml::from_str(
        r#"
        country = "US"
        area_code = "212"
        access_code = "9"
        national_prefix = "1"
        international_prefix = "011"
        internal_max_digits = 4
        "#,
    )
    .expect("full location");
    assert_eq!(full.access_code.as_deref(), Some("9"));
    assert_eq!(full.internal_max_digits, 4);
}

#[test]
fn unknown_config_keys_are_refused() {
    let result = toml::from_str::<Location>("country = \"DE\"\narea = \"30\"");
    let message = result.expect_err("unknown key").to_string();
    assert!(message.contains("unknown field `area`"), "{message}");
}

#[test]
fn formats_read_in_snake_case() {
    #[derive(serde::Deserialize)]
    struct Wrap {
        format: NumberFormat,
    }
    for (text, format) in [
        ("international", NumberFormat::International),
        ("international_no_plus", NumberFormat::InternationalNoPlus),
        ("phonebook", NumberFormat::Phonebook),
        (
            "phonebook_international",
            NumberFormat::PhonebookInternational,
        ),
        ("raw", NumberFormat::Raw),
    ] {
        let wrap: Wrap = toml::from_str(&format!("format = \"{text}\"")).expect(text);
        assert_eq!(wrap.format, format);
    }
    assert_eq!(NumberFormat::default(), NumberFormat::International);
}

#[test]
fn internal_boundary_follows_internal_max_digits() {
    // (max digits, number, internal?)
    for (max, number, internal) in [
        (5, "1", true),
        (5, "201", true),
        (5, "12345", true),
        (5, " 12-345 ", true),
        (5, "123456", false),
        (5, "+201", false),
        (5, "*201", false),
        (5, "", false),
        (5, "abc", false),
        (3, "201", true),
        (3, "2011", false),
        (0, "201", false),
        (10, "1234567890", true),
        (10, "12345678901", false),
    ] {
        let mut location = common::berlin();
        location.internal_max_digits = max;
        let plan = plan(location, NumberFormat::International);
        assert_eq!(plan.is_internal(number), internal, "max {max}, {number:?}");
    }
}

#[test]
fn just_past_the_boundary_numbers_are_external() {
    let numbers = plan(common::berlin(), NumberFormat::International);
    // Five digits: an extension. Six: a Berlin subscriber number.
    assert_eq!(numbers.dialable("12345").as_deref(), Ok("12345"));
    assert_eq!(numbers.dialable("123456").as_deref(), Ok("0030123456"));
    assert_eq!(numbers.present("12345"), "12345");
    assert_eq!(numbers.present("123456"), "+4930123456");

    let mut location = common::berlin();
    location.internal_max_digits = 3;
    let numbers = plan(location, NumberFormat::International);
    assert_eq!(numbers.dialable("201").as_deref(), Ok("201"));
    assert_eq!(numbers.dialable("2011").as_deref(), Ok("00302011"));
    assert_eq!(numbers.present("2011"), "+49302011");
}

#[test]
fn short_numbers_are_external_without_extensions() {
    let mut location = common::new_york();
    location.internal_max_digits = 0;
    let plan = plan(location, NumberFormat::International);
    assert!(plan.dialable("201").is_err());
    assert_eq!(plan.dialable("736 3100").as_deref(), Ok("912127363100"));
    assert_eq!(plan.dialable("*21#").as_deref(), Ok("*21#"));
}
