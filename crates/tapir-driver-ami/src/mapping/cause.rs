//! Asterisk hangup causes (Q.850 numbers) as TAPI disconnect modes.

use tapir_model::DisconnectMode;

/// The cause Asterisk gives a ringing member of a queue or ring group when another answered.
pub const ANSWERED_ELSEWHERE: u32 = 26;

/// The TAPI disconnect mode for a Q.850 hangup cause.
pub fn disconnect_mode(cause: u32) -> DisconnectMode {
    match cause {
        16 | 31 => DisconnectMode::Normal,
        17 => DisconnectMode::Busy,
        18 | 19 | 102 => DisconnectMode::NoAnswer,
        20 | 44 | 47 => DisconnectMode::Unavail,
        21 | 24 => DisconnectMode::Reject,
        22 | 23 => DisconnectMode::NumberChanged,
        ANSWERED_ELSEWHERE => DisconnectMode::Pickup,
        1 | 28 => DisconnectMode::BadAddress,
        2 | 3 => DisconnectMode::Unreachable,
        27 | 38 => DisconnectMode::OutOfOrder,
        34 | 42 => DisconnectMode::Congestion,
        41 => DisconnectMode::TempFailure,
        49 => DisconnectMode::QosUnavail,
        50 | 52 | 54 | 55 | 57 => DisconnectMode::Blocked,
        58 | 65 | 66 | 88 => DisconnectMode::Incompatible,
        _ => DisconnectMode::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_causes_map_to_their_tapi_modes() {
        let cases = [
            (16, DisconnectMode::Normal),
            (17, DisconnectMode::Busy),
            (18, DisconnectMode::NoAnswer),
            (19, DisconnectMode::NoAnswer),
            (21, DisconnectMode::Reject),
            (1, DisconnectMode::BadAddress),
            (3, DisconnectMode::Unreachable),
            (28, DisconnectMode::BadAddress),
            (34, DisconnectMode::Congestion),
            (38, DisconnectMode::OutOfOrder),
            (41, DisconnectMode::TempFailure),
            (42, DisconnectMode::Congestion),
            (26, DisconnectMode::Pickup),
            (0, DisconnectMode::Unknown),
        ];
        for (cause, mode) in cases {
            assert_eq!(disconnect_mode(cause), mode, "cause {cause}");
        }
    }
}
