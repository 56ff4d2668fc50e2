//! Arbitrary input never panics: every short string over an alphabet of digits, prefixes,
//! dial-control characters and unicode, and pseudo-random longer ones.

mod common;

use common::plan;
use tapir_numbers::{DialError, NumberPlan};

const ALPHABET: &[char] = &[
    '0', '1', '9', '+', '*', '#', ' ', '(', ')', '-', 'a', 'W', ',', ';', 'ä', '😀', '\u{0}',
    '\u{200b}', '\u{ff10}', '٣',
];

fn exercise(plan: &NumberPlan, input: &str) {
    let shown = plan.present(input);
    // Never lose the number: what is not understood comes back trimmed.
    assert!(
        !input.trim().is_empty() || shown.trim().is_empty(),
        "{input:?}"
    );
    let _ = plan.is_internal(input);
    if let Err(DialError::InvalidCharacter {
        character,
        position,
    }) = plan.dialable(input)
    {
        assert_eq!(input.chars().nth(position), Some(character), "{input:?}");
    }
}

fn plans() -> Vec<NumberPlan> {
    let mut plans = Vec::new();
    for (_, location) in common::all() {
        for format in common::FORMATS {
            plans.push(plan(location.clone(), format));
        }
    }
    plans
}

#[test]
fn every_string_up_to_three_characters() {
    let plans = plans();
    let mut input = String::new();
    for a in ALPHABET {
        for b in ALPHABET {
            for c in ALPHABET.iter().map(Some).chain([None]) {
                input.clear();
                input.push(*a);
                input.push(*b);
                input.extend(c);
                for plan in &plans {
                    exercise(plan, &input);
                }
            }
        }
    }
}

#[test]
fn pseudo_random_long_strings() {
    let plans = plans();
    // A fixed linear congruential generator: reproducible without a dependency.
    let mut state: u64 = 0x5eed;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    for _ in 0..3000 {
        let length = next() % 40;
        let input: String = (0..length)
            .map(|_| match next() % 4 {
                // Mostly digits, so that the parser sees near-numbers too.
                0 | 1 => char::from(b'0' + (next() % 10) as u8),
                _ => ALPHABET[next() % ALPHABET.len()],
            })
            .collect();
        let plan = &plans[next() % plans.len()];
        exercise(plan, &input);
    }
}

#[test]
fn arbitrary_bytes_as_lossy_text() {
    let plans = plans();
    for a in 0..=255u8 {
        for b in [0u8, b'0', b'+', 0x80, 0xc3, 0xff] {
            let input =
                String::from_utf8_lossy(&[b'+', a, b, b'1', b'2', b'3', b'4', b'5', b'6', b'7'])
                    .into_owned();
            for plan in &plans {
                exercise(plan, &input);
            }
        }
    }
}

#[test]
fn every_plus_prefixed_length_and_country_code() {
    // Country codes 0-999 with national parts of every length reach the metadata parser.
    let plans = plans();
    let plan = &plans[0];
    for code in 0..1000u32 {
        for length in [0usize, 1, 4, 8, 12, 16, 20] {
            let input = format!("+{code}{}", "5".repeat(length));
            exercise(plan, &input);
            exercise(plan, &format!("00{}", &input[1..]));
        }
    }
}
