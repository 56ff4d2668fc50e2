//! tapir's client protocol, version 1: the JSON shapes of the REST API and the WebSocket.
//!
//! The API and the CLI share these types; internal types are never serialised directly, so
//! the core can change without breaking clients.
//!
//! # Layout
//! - [`dto`]: lines, calls, parties, instances, snapshots and events as clients see them,
//!   with conversions from the model and the core's views.
//! - [`command`]: the commands clients send, and their check and conversion into the model.
//! - [`ws`]: the WebSocket envelope: what each side sends.
//! - [`error`]: the one error shape of every failure.
//! - [`accounts`]: users, tokens, teams, line assignments and the audit log.

pub mod accounts;
pub mod command;
pub mod dto;
pub mod error;
pub mod ws;

pub use accounts::{
    AssignBody, AssignmentDto, AuditDto, IssuedTokenDto, LineRightDto, LoginBody, LoginDto, MeDto,
    NewTeamBody, NewTokenBody, NewUserBody, PasswordBody, TeamDto, TeamRightBody, TokenDto,
    TsecimpResultDto, UserDto, UserPatchBody,
};
pub use command::{CommandDto, ForwardDto, PbxSimActionDto, SimActionDto};
pub use dto::{
    CallDto, CommandResultDto, DialBody, DigitsBody, DndBody, EventDto, ForwardsBody, InstanceDto,
    InstanceTestDto, LineDto, LogLevelBody, ParkBody, PartyDto, PickupBody, PickupOntoLineBody,
    PurgeBody, PurgedDto, ReloadDto, SequencedDto, SnapshotDto, SwapBody, TraceBody, UnparkBody,
};
pub use error::ErrorDto;
pub use ws::{ClientMessage, ServerMessage};

/// The API's path prefix.
pub const API_PREFIX: &str = "/api/v1";
