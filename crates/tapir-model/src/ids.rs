//! Server-wide identifiers.
//!
//! Line ids are permanent (kept in the store, never reused); call ids are unique for the
//! lifetime of a server process; request ids are chosen by the server per command.

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A configured PBX connection.
    InstanceId(u32)
);
id_type!(
    /// A line's permanent id (TAPI's `dwPermanentLineID`): stable across restarts, never reused.
    LineId(u32)
);
id_type!(
    /// A call appearance on one line (TAPI's call handle). Unique for the life of the server.
    CallId(u64)
);
id_type!(
    /// One command given to a provider; it completes exactly once.
    RequestId(u64)
);
