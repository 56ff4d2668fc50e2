//! The seam between tapir's core and its PBX drivers.
//!
//! A driver implements [`Provider`]. The core builds one per configured instance, declares
//! nothing about protocols, and talks to it only through a [`ProviderContext`]: a channel of
//! [`ProviderRequest`]s in, a channel of [`ProviderEvent`]s out, and a shutdown token. A driver
//! knows nothing about clients; the core knows nothing about PBX protocols.
//!
//! # The contract a driver keeps
//! - After connecting, and after every reconnect, it sends [`ProviderEvent::Up`] and then one
//!   [`ProviderEvent::Synchronized`] with every device, every live call and every device
//!   status: the core rebuilds from that, never from its own memory.
//! - It reports each call appearance as a full [`CallReport`] whenever anything about it
//!   changes; the core works out what changed. A report in `Idle` ends the appearance.
//! - Every [`ProviderRequest`] is answered by exactly one [`ProviderEvent::Completed`] on the
//!   event channel. A command that creates a call completes with [`Completion::Call`] *before*
//!   the first report of that call, so clients learn the call's id before its events.
//! - PBX-native identifiers stay opaque: [`DeviceKey`] and [`CallRef`] are never interpreted
//!   by the core.
//! - Malformed PBX input is logged and skipped or reported as [`ProviderEvent::Down`]; it never
//!   panics.
//! - While [`ProviderContext::trace`] is on, raw PBX traffic is traced at `trace` level to the
//!   target [`PROTOCOL_TRACE`], one event per message with `direction = "in"` or `"out"`,
//!   passwords and tokens redacted. The server writes it to a rotating file.
//!
//! # Shared by drivers
//! - [`backoff`]: capped exponential back-off with jitter between reconnection attempts.
//! - [`testing`]: running a provider in a test.
//! - [`tls`]: the TLS client towards a PBX (system certificates plus `tls_ca_file`, the
//!   certificate checked against `tls_server_name` or the host).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tapir_model::{
    CallOrigin, CallReason, CallState, Capabilities, Forward, Party, PbxSimAction, RequestId,
    SimAction, TapiError,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub mod backoff;
pub mod testing;
pub mod tls;

/// The tracing target of raw PBX traffic.
pub const PROTOCOL_TRACE: &str = "tapir_protocol";

/// Whether an instance's raw PBX traffic is being traced; the server flips it at run time.
#[derive(Debug, Clone, Default)]
pub struct TraceSwitch(Arc<AtomicBool>);

impl TraceSwitch {
    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, on: bool) {
        self.0.store(on, Ordering::Relaxed);
    }
}

/// A boxed future that a provider returns; it owns everything it needs.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A device's key on its PBX (e.g. the extension or a device name). Stable across reconnects.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceKey(pub String);

/// A call appearance's reference on its PBX. Unique within one provider while the call lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallRef(pub String);

/// One device (extension) of the PBX, which the core turns into a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub key: DeviceKey,
    /// The directory number callers dial.
    pub address: String,
    /// The name the PBX shows for the device's user (line-name placeholder `%d`).
    pub name: String,
    /// A longer name, e.g. "Ada Lovelace (Sales)" (`%c`; falls back to `name`).
    pub long_name: Option<String>,
    /// The user or alias name the PBX knows the device by (`%h`, `%u`; falls back to
    /// `address`).
    pub alias: Option<String>,
    /// The node or site prefix of the extension on networked PBXs (`%E`).
    pub node_prefix: Option<String>,
}

impl Device {
    /// A device known by key, number and name only.
    pub fn new(
        key: impl Into<String>,
        address: impl Into<String>,
        name: impl Into<String>,
    ) -> Device {
        Device {
            key: DeviceKey(key.into()),
            address: address.into(),
            name: name.into(),
            long_name: None,
            alias: None,
            node_prefix: None,
        }
    }
}

/// Where a provider's PBX is, for line names (placeholders `%n`, `%p`, `%P`, `%u`, `%x`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PbxIdentity {
    /// The PBX's host name or address.
    pub host: Option<String>,
    pub port: Option<u16>,
    /// The protocol's usual port, so that `%p` can stay empty for it.
    pub default_port: Option<u16>,
    /// The PBX's own name or product, e.g. "Asterisk 22".
    pub name: Option<String>,
}

/// Forwarding and do-not-disturb of one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStatus {
    pub device: DeviceKey,
    pub forwards: Vec<Forward>,
    pub do_not_disturb: bool,
}

/// The full current picture of one call appearance on one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallReport {
    pub device: DeviceKey,
    pub call: CallRef,
    pub state: CallState,
    pub origin: CallOrigin,
    pub reason: CallReason,
    pub caller: Party,
    pub called: Party,
    pub connected: Party,
    pub redirecting: Party,
    pub redirection: Party,
    /// The appearance this one relates to (consultation and original, on the same device).
    pub related: Option<CallRef>,
    /// The conference parent of a conferenced appearance.
    pub conference: Option<CallRef>,
}

/// The successful result of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    Done,
    /// The command created this call appearance (make call, consult, pickup, conference,
    /// unpark).
    Call(CallRef),
    /// A park: the place where the call now waits.
    Parked {
        at: String,
    },
}

/// What a provider tells the core.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderEvent {
    /// The PBX link is up; a [`ProviderEvent::Synchronized`] follows.
    Up,
    /// The PBX link is down; the provider is reconnecting.
    Down {
        reason: String,
    },
    /// The complete state after (re)connecting.
    Synchronized {
        devices: Vec<Device>,
        calls: Vec<CallReport>,
        statuses: Vec<DeviceStatus>,
        /// Devices listed but not usable now (e.g. the PBX reports them out of service, or
        /// the provider cannot monitor them); every other device is in service.
        out_of_service: Vec<DeviceKey>,
    },
    DeviceAdded(Device),
    DeviceRemoved(DeviceKey),
    DeviceStatus(DeviceStatus),
    /// One device went out of service or came back while the link stays up. The provider
    /// ends (reports idle) the calls it can no longer follow on it.
    DeviceService {
        device: DeviceKey,
        in_service: bool,
        /// Why, for the log and the line's clients.
        reason: String,
    },
    /// Boxed: a report is much larger than the other events.
    Call(Box<CallReport>),
    /// The one answer to a request.
    Completed {
        request: RequestId,
        outcome: Result<Completion, TapiError>,
    },
}

/// Where a pickup takes its call from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PickupFrom {
    Call(CallRef),
    Device(DeviceKey),
}

/// A command for the PBX, addressed by PBX-native keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderCommand {
    MakeCall {
        device: DeviceKey,
        to: String,
    },
    Accept {
        call: CallRef,
    },
    Answer {
        call: CallRef,
    },
    Drop {
        call: CallRef,
    },
    Hold {
        call: CallRef,
    },
    Unhold {
        call: CallRef,
    },
    Swap {
        active: CallRef,
        held: CallRef,
    },
    BlindTransfer {
        call: CallRef,
        to: String,
    },
    Consult {
        call: CallRef,
        to: String,
    },
    CompleteTransfer {
        held: CallRef,
        consult: CallRef,
    },
    Conference {
        held: CallRef,
        consult: CallRef,
    },
    Redirect {
        call: CallRef,
        to: String,
    },
    /// Send DTMF tones on a call; `digits` holds only `0-9 * # A-D`.
    GenerateDigits {
        call: CallRef,
        digits: String,
    },
    Pickup {
        device: DeviceKey,
        from: PickupFrom,
    },
    /// Park a connected call at `to`, or where the PBX chooses when `None`.
    Park {
        call: CallRef,
        to: Option<String>,
    },
    /// Take the call parked at `from` onto `device`; completes with the new call.
    Unpark {
        device: DeviceKey,
        from: String,
    },
    SetForwards {
        device: DeviceKey,
        forwards: Vec<Forward>,
    },
    SetDoNotDisturb {
        device: DeviceKey,
        enabled: bool,
    },
    Simulate {
        device: DeviceKey,
        action: SimAction,
    },
    /// A change to the simulated PBX as a whole (`SIMULATE` capability).
    SimulatePbx(PbxSimAction),
}

/// A command with the id its completion must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRequest {
    pub id: RequestId,
    pub command: ProviderCommand,
}

/// Everything a running provider gets from the core. Providers read no globals.
#[derive(Debug)]
pub struct ProviderContext {
    /// The instance name, for logs.
    pub instance: String,
    pub events: mpsc::Sender<ProviderEvent>,
    pub requests: mpsc::Receiver<ProviderRequest>,
    pub shutdown: CancellationToken,
    /// Trace raw PBX traffic while this is on.
    pub trace: TraceSwitch,
}

/// What a connection test found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestReport {
    /// One line for people, e.g. "connected to sim, 20 extensions".
    pub summary: String,
    pub devices: usize,
}

/// Why a provider could not start, run or pass a connection test.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot connect to {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("the core stopped listening")]
    CoreGone,
}

/// A PBX driver. Implementors write [`Provider::capabilities`], [`Provider::run`] and
/// [`Provider::test_connection`]; the core does the rest.
pub trait Provider: Send + 'static {
    /// The driver's name as used in the config (`sim`, `ami`, ...).
    fn kind(&self) -> &'static str;

    /// What this driver can do; answered before it starts.
    fn capabilities(&self) -> Capabilities;

    /// Where the PBX is, for line names; answered before it starts.
    fn identity(&self) -> PbxIdentity {
        PbxIdentity::default()
    }

    /// Runs the provider until `cx.shutdown` fires. Returns an error only when it cannot go
    /// on at all (bad configuration); link failures are reported as events and retried.
    fn run(self: Box<Self>, cx: ProviderContext) -> BoxFuture<Result<(), ProviderError>>;

    /// Connects with the same settings, authenticates, lists devices and disconnects, without
    /// touching a running instance.
    fn test_connection(&self) -> BoxFuture<Result<TestReport, ProviderError>>;
}
