//! Number formats: telephone numbers between the PBX, tapir and its clients.
//!
//! A PBX sends numbers in events however it likes (national, international, with or without
//! the outside-line access code, bare extensions); clients want them in one predictable form
//! so that a CRM finds the customer. Clients dial numbers in every usual form, and the PBX
//! wants exactly one. A [`NumberPlan`] does both directions for one instance, from its
//! [`Location`] and chosen [`NumberFormat`]. Number ranges and lengths of every country come
//! from the `phonenumber` crate (a libphonenumber port); only the location's own conventions
//! live here. Pure functions: no I/O, no state.
//!
//! # Layout
//! - [`location`]: the config types, [`Location`] and [`NumberFormat`].
//! - [`plan`]: [`NumberPlan`], which presents PBX numbers and makes client numbers dialable.
//! - `read`: the readings of a digit string (access code, prefixes, area code) and the
//!   choice between them by the metadata.
//! - `text`: formatting characters, dialable characters, internal extensions.
//! - [`error`]: [`PlanError`] for bad config, [`DialError`] for undiallable input.
//!
//! # Example
//! ```
//! use tapir_numbers::{Location, NumberFormat, NumberPlan};
//!
//! let mut berlin = Location::new("DE");
//! berlin.area_code = Some("30".into());
//! berlin.access_code = Some("0".into());
//! let plan = NumberPlan::new(berlin, NumberFormat::International)?;
//!
//! assert_eq!(plan.present("03514911705"), "+493514911705");
//! assert_eq!(plan.present("3514911705"), "+49303514911705");
//! assert_eq!(plan.dialable("+49 (30) 3514911705")?, "00303514911705");
//! assert_eq!(plan.dialable("201")?, "201");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub mod error;
pub mod location;
pub mod plan;
mod read;
mod text;

pub use error::{DialError, Impossible, PlanError};
pub use location::{Location, NumberFormat};
pub use plan::NumberPlan;
