//! TAPI's 16 call states (`LINECALLSTATE_*`) and the detail each state carries.
//!
//! Bit values are TAPI's, so a Windows TSP can pass them through unchanged.

macro_rules! mode_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $bit:expr => $label:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in TAPI's bit order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// TAPI's bit value.
            pub fn bit(self) -> u32 {
                match self { $($name::$variant => $bit),+ }
            }

            /// The stable lower-case name used on the wire and in the CLI.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }

            /// Parses the name given by [`Self::as_str`].
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == name)
            }
        }
    };
}

mode_enum!(
    /// `LINEBUSYMODE_*`: why a call hears busy tone.
    BusyMode {
        Station = 0x1 => "station",
        Trunk = 0x2 => "trunk",
        Unknown = 0x4 => "unknown",
        Unavail = 0x8 => "unavail",
    }
);

mode_enum!(
    /// `LINEDIALTONEMODE_*`.
    DialtoneMode {
        Normal = 0x1 => "normal",
        Special = 0x2 => "special",
        Internal = 0x4 => "internal",
        External = 0x8 => "external",
        Unknown = 0x10 => "unknown",
        Unavail = 0x20 => "unavail",
    }
);

mode_enum!(
    /// `LINESPECIALINFO_*`: the special information tone heard.
    SpecialInfo {
        NoCircuit = 0x1 => "nocircuit",
        CustIrreg = 0x2 => "custirreg",
        Reorder = 0x4 => "reorder",
        Unknown = 0x8 => "unknown",
        Unavail = 0x10 => "unavail",
    }
);

mode_enum!(
    /// `LINECONNECTEDMODE_*`.
    ConnectedMode {
        Active = 0x1 => "active",
        Inactive = 0x2 => "inactive",
        ActiveHeld = 0x4 => "activeheld",
        InactiveHeld = 0x8 => "inactiveheld",
        Confirmed = 0x10 => "confirmed",
    }
);

mode_enum!(
    /// `LINEOFFERINGMODE_*`.
    OfferingMode {
        Active = 0x1 => "active",
        Inactive = 0x2 => "inactive",
    }
);

mode_enum!(
    /// `LINEDISCONNECTMODE_*`: why a call was disconnected.
    DisconnectMode {
        Normal = 0x1 => "normal",
        Unknown = 0x2 => "unknown",
        Reject = 0x4 => "reject",
        Pickup = 0x8 => "pickup",
        Forwarded = 0x10 => "forwarded",
        Busy = 0x20 => "busy",
        NoAnswer = 0x40 => "noanswer",
        BadAddress = 0x80 => "badaddress",
        Unreachable = 0x100 => "unreachable",
        Congestion = 0x200 => "congestion",
        Incompatible = 0x400 => "incompatible",
        Unavail = 0x800 => "unavail",
        NoDialtone = 0x1000 => "nodialtone",
        NumberChanged = 0x2000 => "numberchanged",
        OutOfOrder = 0x4000 => "outoforder",
        TempFailure = 0x8000 => "tempfailure",
        QosUnavail = 0x10000 => "qosunavail",
        Blocked = 0x20000 => "blocked",
        DoNotDisturb = 0x40000 => "donotdisturb",
        Cancelled = 0x80000 => "cancelled",
    }
);

/// A call's state: one of TAPI's 16 `LINECALLSTATE_*` values with its detail.
///
/// A conferenced call's parent is held on the [`crate::Call`], not here, because the state is
/// reported by drivers that know the parent only by their own reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallState {
    Idle,
    Offering(OfferingMode),
    Accepted,
    Dialtone(DialtoneMode),
    Dialing,
    Ringback,
    Busy(BusyMode),
    SpecialInfo(SpecialInfo),
    Connected(ConnectedMode),
    Proceeding,
    OnHold,
    Conferenced,
    OnHoldPendConf,
    OnHoldPendTransfer,
    Disconnected(DisconnectMode),
    Unknown,
}

impl CallState {
    /// TAPI's `LINECALLSTATE_*` bit.
    pub fn bit(self) -> u32 {
        match self {
            CallState::Idle => 0x1,
            CallState::Offering(_) => 0x2,
            CallState::Accepted => 0x4,
            CallState::Dialtone(_) => 0x8,
            CallState::Dialing => 0x10,
            CallState::Ringback => 0x20,
            CallState::Busy(_) => 0x40,
            CallState::SpecialInfo(_) => 0x80,
            CallState::Connected(_) => 0x100,
            CallState::Proceeding => 0x200,
            CallState::OnHold => 0x400,
            CallState::Conferenced => 0x800,
            CallState::OnHoldPendConf => 0x1000,
            CallState::OnHoldPendTransfer => 0x2000,
            CallState::Disconnected(_) => 0x4000,
            CallState::Unknown => 0x8000,
        }
    }

    /// The stable lower-case name used on the wire and in the CLI.
    pub fn name(self) -> &'static str {
        match self {
            CallState::Idle => "idle",
            CallState::Offering(_) => "offering",
            CallState::Accepted => "accepted",
            CallState::Dialtone(_) => "dialtone",
            CallState::Dialing => "dialing",
            CallState::Ringback => "ringback",
            CallState::Busy(_) => "busy",
            CallState::SpecialInfo(_) => "specialinfo",
            CallState::Connected(_) => "connected",
            CallState::Proceeding => "proceeding",
            CallState::OnHold => "onhold",
            CallState::Conferenced => "conferenced",
            CallState::OnHoldPendConf => "onholdpendconf",
            CallState::OnHoldPendTransfer => "onholdpendtransfer",
            CallState::Disconnected(_) => "disconnected",
            CallState::Unknown => "unknown",
        }
    }

    /// The detail TAPI sends as `dwParam2` of `LINE_CALLSTATE`, as (name, bit); `None` for
    /// states without a mode.
    pub fn mode(self) -> Option<(&'static str, u32)> {
        match self {
            CallState::Offering(m) => Some((m.as_str(), m.bit())),
            CallState::Dialtone(m) => Some((m.as_str(), m.bit())),
            CallState::Busy(m) => Some((m.as_str(), m.bit())),
            CallState::SpecialInfo(m) => Some((m.as_str(), m.bit())),
            CallState::Connected(m) => Some((m.as_str(), m.bit())),
            CallState::Disconnected(m) => Some((m.as_str(), m.bit())),
            _ => None,
        }
    }

    /// Builds a state from its wire name and optional mode name; states that carry a mode
    /// take TAPI's most neutral one when none is given.
    pub fn from_names(name: &str, mode: Option<&str>) -> Option<CallState> {
        fn pick<T: Copy>(
            mode: Option<&str>,
            parse: fn(&str) -> Option<T>,
            default: T,
        ) -> Option<T> {
            match mode {
                None => Some(default),
                Some(m) => parse(m),
            }
        }
        Some(match name {
            "idle" => CallState::Idle,
            "offering" => {
                CallState::Offering(pick(mode, OfferingMode::from_name, OfferingMode::Active)?)
            }
            "accepted" => CallState::Accepted,
            "dialtone" => {
                CallState::Dialtone(pick(mode, DialtoneMode::from_name, DialtoneMode::Normal)?)
            }
            "dialing" => CallState::Dialing,
            "ringback" => CallState::Ringback,
            "busy" => CallState::Busy(pick(mode, BusyMode::from_name, BusyMode::Unknown)?),
            "specialinfo" => {
                CallState::SpecialInfo(pick(mode, SpecialInfo::from_name, SpecialInfo::Unknown)?)
            }
            "connected" => {
                CallState::Connected(pick(mode, ConnectedMode::from_name, ConnectedMode::Active)?)
            }
            "proceeding" => CallState::Proceeding,
            "onhold" => CallState::OnHold,
            "conferenced" => CallState::Conferenced,
            "onholdpendconf" => CallState::OnHoldPendConf,
            "onholdpendtransfer" => CallState::OnHoldPendTransfer,
            "disconnected" => CallState::Disconnected(pick(
                mode,
                DisconnectMode::from_name,
                DisconnectMode::Unknown,
            )?),
            "unknown" => CallState::Unknown,
            _ => return None,
        })
    }

    /// True for the held states, including the consultation holds.
    pub fn is_held(self) -> bool {
        matches!(
            self,
            CallState::OnHold | CallState::OnHoldPendConf | CallState::OnHoldPendTransfer
        )
    }

    /// True while the call occupies the station: the user is dialling, alerting the far end
    /// or talking. A line has at most one such call at a time on a simple station.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            CallState::Dialtone(_)
                | CallState::Dialing
                | CallState::Proceeding
                | CallState::Ringback
                | CallState::Busy(_)
                | CallState::SpecialInfo(_)
                | CallState::Connected(_)
                | CallState::Conferenced
        )
    }

    /// True for the states in which the station is being alerted.
    pub fn is_alerting(self) -> bool {
        matches!(self, CallState::Offering(_) | CallState::Accepted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_STATES: [CallState; 16] = [
        CallState::Idle,
        CallState::Offering(OfferingMode::Active),
        CallState::Accepted,
        CallState::Dialtone(DialtoneMode::Normal),
        CallState::Dialing,
        CallState::Ringback,
        CallState::Busy(BusyMode::Station),
        CallState::SpecialInfo(SpecialInfo::Unknown),
        CallState::Connected(ConnectedMode::Active),
        CallState::Proceeding,
        CallState::OnHold,
        CallState::Conferenced,
        CallState::OnHoldPendConf,
        CallState::OnHoldPendTransfer,
        CallState::Disconnected(DisconnectMode::Normal),
        CallState::Unknown,
    ];

    #[test]
    fn the_sixteen_states_have_distinct_single_tapi_bits() {
        let mut seen = 0u32;
        for state in ALL_STATES {
            assert_eq!(state.bit().count_ones(), 1, "{state:?}");
            assert_eq!(seen & state.bit(), 0, "{state:?} reuses a bit");
            seen |= state.bit();
        }
        assert_eq!(seen, 0xFFFF);
    }

    #[test]
    fn names_round_trip_with_modes() {
        for state in ALL_STATES {
            let mode = state.mode().map(|(name, _)| name);
            assert_eq!(CallState::from_names(state.name(), mode), Some(state));
        }
        assert_eq!(CallState::from_names("busy", Some("nonsense")), None);
        assert_eq!(CallState::from_names("ringing", None), None);
    }

    #[test]
    fn disconnect_modes_match_tapi_values() {
        assert_eq!(DisconnectMode::Busy.bit(), 0x20);
        assert_eq!(DisconnectMode::Cancelled.bit(), 0x80000);
        assert_eq!(DisconnectMode::ALL.len(), 20);
    }
}
