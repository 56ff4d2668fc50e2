//! The rights matrix: every API action, for every role and relation to a line, over REST and
//! the WebSocket, checked both ways against a table of expected outcomes.
//!
//! The table is written here from the rules in prose, not computed by the product's policy
//! code, so that a bug in that code shows up as a difference:
//!
//! - Lines of another tenant's instance do not exist for a caller: every answer about them is
//!   exactly the answer about a line or call that does not exist.
//! - An administrator controls every line of the tenants it administers (a global
//!   administrator: of every tenant).
//! - `server_application`: every user of the tenant controls every line.
//! - `workstation`: own lines are controlled; assigned lines and teammates' own lines give the
//!   assignment's or the team's right.
//! - `terminal_server`: like `workstation` without teams; with `restrict_dialing`, placing and
//!   dropping calls is reserved to users allowed to dial (and administrators).
//! - Seeing a line and its calls needs monitor; acting on them needs control; placing and
//!   dropping calls needs control and, where reserved, the dial right. A pickup needs control
//!   on the line that picks up and monitor on what it picks up.
//! - Reload and metrics: global administrators only; the audit log: administrators only;
//!   assigning lines: administrators, within their tenants; instance administration: the
//!   administrators of the instance's tenant (other tenants do not see the instance).
//!
//! One server with four simulated instances runs the whole matrix; failures are collected and
//! reported together, each naming principal, line and action.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{PATIENCE, Server, Ws, http_as};
use reqwest::Method;
use serde_json::{Value, json};
use tapir_wire::{EventDto, ServerMessage};

/// Extensions per instance, by position: the target line, the line that rings it, the number
/// dialled, the line that picks up, and the pair that makes the marker call.
const EXTENSIONS: usize = 6;
const TARGET: usize = 0;
const RINGER: usize = 1;
const DESTINATION: usize = 2;
const PICKER: usize = 3;
const MARKER: usize = 4;
const MARKER_PEER: usize = 5;

/// `LINEERR_NOTOWNER`.
const NOT_OWNER_LINEERR: u64 = 0x8000_0046;
/// An id that names nothing, to compare refusals with.
const MISSING_ID: &str = "999999";
const MISSING_INSTANCE: &str = "nosuch";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Workstation,
    TerminalServer,
    ServerApplication,
}

impl Mode {
    fn word(self) -> &'static str {
        match self {
            Mode::Workstation => "workstation",
            Mode::TerminalServer => "terminal_server",
            Mode::ServerApplication => "server_application",
        }
    }
}

struct Instance {
    name: &'static str,
    tenant: &'static str,
    mode: Mode,
    restrict_dialing: bool,
    first_extension: u32,
}

const INSTANCES: [Instance; 4] = [
    Instance {
        name: "ws",
        tenant: "acme",
        mode: Mode::Workstation,
        restrict_dialing: false,
        first_extension: 201,
    },
    Instance {
        name: "ts",
        tenant: "acme",
        mode: Mode::TerminalServer,
        restrict_dialing: true,
        first_extension: 301,
    },
    Instance {
        name: "sa",
        tenant: "acme",
        mode: Mode::ServerApplication,
        restrict_dialing: false,
        first_extension: 401,
    },
    Instance {
        name: "other",
        tenant: "globex",
        mode: Mode::ServerApplication,
        restrict_dialing: false,
        first_extension: 501,
    },
];

/// The instance of each tenant whose lines every user of the tenant sees (for marker calls
/// and pickups).
const ACME_OPEN: usize = 2;
const GLOBEX_OPEN: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Right {
    None,
    Monitor,
    Control,
}

impl Right {
    fn word(self) -> &'static str {
        match self {
            Right::None => "none",
            Right::Monitor => "monitor",
            Right::Control => "control",
        }
    }
}

/// How a principal relates to an instance's target line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relation {
    Own,
    Assigned(Right),
    /// Member of a team, with this member right, together with `owner`, who owns the line.
    Team(Right),
}

use Relation::{Assigned, Own, Team};

struct Principal {
    name: &'static str,
    /// `None`: an administrator of every tenant.
    tenant: Option<&'static str>,
    admin: bool,
    may_dial: bool,
    /// Relations to the target lines, by instance name.
    relations: &'static [(&'static str, Relation)],
}

/// The user that owns the target lines, and whose teams give the team relations.
const OWNER: &str = "owner";

const PRINCIPALS: &[Principal] = &[
    // The server's own token: the global administrator.
    Principal {
        name: "admin",
        tenant: None,
        admin: true,
        may_dial: true,
        relations: &[],
    },
    Principal {
        name: "acme-admin",
        tenant: Some("acme"),
        admin: true,
        may_dial: true,
        relations: &[],
    },
    Principal {
        name: OWNER,
        tenant: Some("acme"),
        admin: false,
        may_dial: true,
        relations: &[("ws", Own), ("ts", Own), ("sa", Own)],
    },
    Principal {
        name: "assigned-control",
        tenant: Some("acme"),
        admin: false,
        may_dial: true,
        relations: &[
            ("ws", Assigned(Right::Control)),
            ("ts", Assigned(Right::Control)),
            ("sa", Assigned(Right::Control)),
        ],
    },
    Principal {
        name: "assigned-monitor",
        tenant: Some("acme"),
        admin: false,
        may_dial: true,
        relations: &[
            ("ws", Assigned(Right::Monitor)),
            ("ts", Assigned(Right::Monitor)),
            ("sa", Assigned(Right::Monitor)),
        ],
    },
    Principal {
        name: "team-monitor",
        tenant: Some("acme"),
        admin: false,
        may_dial: true,
        relations: &[
            ("ws", Team(Right::Monitor)),
            ("ts", Team(Right::Monitor)),
            ("sa", Team(Right::Monitor)),
        ],
    },
    Principal {
        name: "team-control",
        tenant: Some("acme"),
        admin: false,
        may_dial: true,
        relations: &[
            ("ws", Team(Right::Control)),
            ("ts", Team(Right::Control)),
            ("sa", Team(Right::Control)),
        ],
    },
    Principal {
        name: "stranger",
        tenant: Some("acme"),
        admin: false,
        may_dial: true,
        relations: &[],
    },
    Principal {
        name: "no-dial",
        tenant: Some("acme"),
        admin: false,
        may_dial: false,
        relations: &[
            ("ts", Assigned(Right::Control)),
            ("ws", Assigned(Right::Control)),
        ],
    },
    Principal {
        name: "globex-user",
        tenant: Some("globex"),
        admin: false,
        may_dial: true,
        relations: &[],
    },
];

/// Users that only receive assignments (so assigning changes no principal's rights).
const SPARES: [(&str, &str); 2] = [("acme", "spare-acme"), ("globex", "spare-globex")];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Monitor,
    Control,
    Dial,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Not a rights refusal (success, or a state error such as 409 `invalid_call_state`).
    Allowed,
    /// 403 `not_owner` (`LINEERR_NOTOWNER`).
    NotOwner,
    /// 404, exactly as for an id that does not exist.
    Invisible,
    /// 403 `forbidden`.
    Forbidden,
}

impl Principal {
    fn in_tenant(&self, tenant: &str) -> bool {
        self.tenant.is_none_or(|own| own == tenant)
    }

    fn relation(&self, instance: &str) -> Option<Relation> {
        self.relations
            .iter()
            .find(|(name, _)| *name == instance)
            .map(|(_, relation)| *relation)
    }

    /// The right on extension `extension` of instance `i`, from the rules in prose.
    fn right(&self, i: usize, extension: usize) -> Right {
        let instance = &INSTANCES[i];
        if !self.in_tenant(instance.tenant) {
            return Right::None;
        }
        if self.admin {
            return Right::Control;
        }
        let relation = if extension == TARGET {
            self.relation(instance.name)
        } else {
            None
        };
        match (instance.mode, relation) {
            (Mode::ServerApplication, _) => Right::Control,
            (_, Some(Own)) => Right::Control,
            (_, Some(Assigned(right))) => right,
            (Mode::Workstation, Some(Team(right))) => right,
            (Mode::TerminalServer, Some(Team(_))) | (_, None) => Right::None,
        }
    }

    /// What an action needing `need` on extension `extension` of instance `i` gets.
    fn outcome(&self, i: usize, extension: usize, need: Need) -> Outcome {
        let instance = &INSTANCES[i];
        match (self.right(i, extension), need) {
            (Right::None, _) => Outcome::Invisible,
            (_, Need::Monitor) => Outcome::Allowed,
            (Right::Monitor, _) => Outcome::NotOwner,
            (Right::Control, Need::Dial)
                if instance.mode == Mode::TerminalServer
                    && instance.restrict_dialing
                    && !self.may_dial
                    && !self.admin =>
            {
                Outcome::NotOwner
            }
            (Right::Control, _) => Outcome::Allowed,
        }
    }

    fn global_admin(&self) -> Outcome {
        if self.admin && self.tenant.is_none() {
            Outcome::Allowed
        } else {
            Outcome::Forbidden
        }
    }

    fn any_admin(&self) -> Outcome {
        if self.admin {
            Outcome::Allowed
        } else {
            Outcome::Forbidden
        }
    }

    /// Assigning a line of instance `i` to a user of the line's tenant.
    fn assign(&self, i: usize) -> Outcome {
        match (self.admin, self.in_tenant(INSTANCES[i].tenant)) {
            (false, _) => Outcome::Forbidden,
            (true, true) => Outcome::Allowed,
            (true, false) => Outcome::Invisible,
        }
    }

    /// Administering instance `i`; `refusal` is what a non-administrator of its tenant gets.
    fn administer(&self, i: usize, refusal: Outcome) -> Outcome {
        match (self.in_tenant(INSTANCES[i].tenant), self.admin) {
            (false, _) => Outcome::Invisible,
            (true, true) => Outcome::Allowed,
            (true, false) => refusal,
        }
    }

    /// The instance whose lines the principal controls whatever its relations.
    fn open_instance(&self) -> usize {
        if self.tenant == Some("globex") {
            GLOBEX_OPEN
        } else {
            ACME_OPEN
        }
    }

    /// The user to assign lines of instance `i` to: one of the principal's tenant, so an
    /// administrator of another tenant is refused for the line, not for the user.
    fn assignee(&self, i: usize) -> &'static str {
        let tenant = self.tenant.unwrap_or(INSTANCES[i].tenant);
        SPARES
            .iter()
            .find(|(t, _)| *t == tenant)
            .map(|(_, name)| *name)
            .expect("a spare user per tenant")
    }
}

fn number(i: usize, extension: usize) -> String {
    (INSTANCES[i].first_extension + extension as u32).to_string()
}

fn config() -> String {
    INSTANCES
        .iter()
        .map(|i| {
            format!(
                "[[instances]]\nname = \"{}\"\ntenant = \"{}\"\nmode = \"{}\"\n\
                 restrict_dialing = {}\n[instances.driver]\ntype = \"sim\"\n\
                 extensions = {EXTENSIONS}\nfirst_extension = {}\n\n",
                i.name,
                i.tenant,
                i.mode.word(),
                i.restrict_dialing,
                i.first_extension
            )
        })
        .collect()
}

/// Any request: the status and the JSON body (`null` when empty, a string when not JSON).
async fn send(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("HTTP request");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, body)
}

/// An answer, REST or WebSocket, reduced to what the matrix judges.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    /// The HTTP status; `None` over the WebSocket.
    status: Option<u16>,
    error: Option<String>,
    lineerr: Option<u64>,
    message: Option<String>,
    text: String,
}

impl Answer {
    fn rest(status: u16, body: &Value) -> Answer {
        let error = (status >= 400).then(|| body["error"].as_str().unwrap_or("?").to_owned());
        Answer {
            status: Some(status),
            error,
            lineerr: body["lineerr"].as_u64(),
            message: body["message"].as_str().map(str::to_owned),
            text: format!("{status} {body}"),
        }
    }

    fn ws(message: &ServerMessage) -> Answer {
        match message {
            ServerMessage::Result { ok: true, .. } => Answer {
                status: None,
                error: None,
                lineerr: None,
                message: None,
                text: format!("{message:?}"),
            },
            ServerMessage::Result {
                ok: false,
                error: Some(error),
                ..
            } => Answer {
                status: None,
                error: Some(error.error.clone()),
                lineerr: error.lineerr.map(u64::from),
                message: Some(error.message.clone()),
                text: format!("{message:?}"),
            },
            other => Answer {
                status: None,
                error: Some("?".into()),
                lineerr: None,
                message: None,
                text: format!("not a result: {other:?}"),
            },
        }
    }

    fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

/// Errors that refuse for rights (or read as a missing id); anything else is not a refusal.
const REFUSALS: &[&str] = &[
    "not_owner",
    "forbidden",
    "not_found",
    "invalid_line",
    "invalid_call",
    "unauthenticated",
];

/// Why `answer` is not `expected`, if it is not. `reference` is the answer about an id that
/// does not exist (`missing_id`), which an invisible one (`id`) must match.
fn verdict(
    expected: Outcome,
    answer: &Answer,
    reference: Option<&Answer>,
    (id, missing_id): (&str, &str),
) -> Option<String> {
    let error = answer.error.as_deref();
    let status_is = |want: u16| answer.status.is_none_or(|s| s == want);
    let fine = match expected {
        Outcome::Allowed => {
            !error.is_some_and(|e| REFUSALS.contains(&e) || e == "internal")
                && !answer
                    .status
                    .is_some_and(|s| matches!(s, 401 | 403 | 404 | 500))
        }
        Outcome::NotOwner => {
            status_is(403)
                && error == Some("not_owner")
                && answer.lineerr == Some(NOT_OWNER_LINEERR)
        }
        Outcome::Forbidden => status_is(403) && error == Some("forbidden"),
        Outcome::Invisible => {
            let Some(reference) = reference else {
                return Some("(no reference answer to compare with)".into());
            };
            let normal = |message: &Option<String>, id: &str| {
                message.as_deref().map(|m| m.replace(id, "<id>"))
            };
            status_is(404)
                && error.is_some()
                && reference.error.is_some()
                && answer.status == reference.status
                && answer.error == reference.error
                && answer.lineerr == reference.lineerr
                && normal(&answer.message, id) == normal(&reference.message, missing_id)
        }
    };
    if fine {
        return None;
    }
    let mut why = format!("expected {expected:?}, got {}", answer.text);
    if let Some(reference) = reference {
        why.push_str(&format!(
            "; for the missing id {missing_id}: {}",
            reference.text
        ));
    }
    Some(why)
}

/// One request of the matrix and its twin about something that does not exist.
struct Probe {
    action: &'static str,
    method: Method,
    path: String,
    body: Option<Value>,
    missing_path: String,
    missing_body: Option<Value>,
    /// The id in `path`, and the one in `missing_path`.
    ids: (String, String),
}

impl Probe {
    /// `METHOD /api/v1/lines/{line}{tail}`.
    fn line(action: &'static str, method: Method, line: u32, tail: &str, body: Value) -> Probe {
        Probe {
            action,
            method,
            path: format!("/api/v1/lines/{line}{tail}"),
            body: Some(body.clone()),
            missing_path: format!("/api/v1/lines/{MISSING_ID}{tail}"),
            missing_body: Some(body),
            ids: (line.to_string(), MISSING_ID.into()),
        }
    }

    /// `POST /api/v1/calls/{call}/{action}`.
    fn call(action: &'static str, call: u64, body: Value) -> Probe {
        Probe {
            action,
            method: Method::POST,
            path: format!("/api/v1/calls/{call}/{action}"),
            body: Some(body.clone()),
            missing_path: format!("/api/v1/calls/{MISSING_ID}/{action}"),
            missing_body: Some(body),
            ids: (call.to_string(), MISSING_ID.into()),
        }
    }

    /// `METHOD /api/v1/instances/{name}{tail}`.
    fn instance(
        action: &'static str,
        method: Method,
        name: &str,
        tail: &str,
        body: Value,
    ) -> Probe {
        Probe {
            action,
            method,
            path: format!("/api/v1/instances/{name}{tail}"),
            body: Some(body.clone()),
            missing_path: format!("/api/v1/instances/{MISSING_INSTANCE}{tail}"),
            missing_body: Some(body),
            ids: (name.into(), MISSING_INSTANCE.into()),
        }
    }
}

struct Matrix {
    server: Server,
    root: reqwest::Client,
    /// Tokens and clients of the principals, in `PRINCIPALS` order.
    tokens: Vec<String>,
    clients: Vec<reqwest::Client>,
    /// Line ids by instance and extension position.
    lines: Vec<Vec<u32>>,
    failures: Vec<String>,
}

impl Matrix {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    /// Sets up users, teams, assignments and tokens as the global administrator.
    async fn start() -> Matrix {
        let server = Server::with_config(&config());
        let root = http_as(&server.token);
        let mut matrix = Matrix {
            root,
            tokens: Vec::new(),
            clients: Vec::new(),
            lines: Vec::new(),
            failures: Vec::new(),
            server,
        };
        matrix.find_lines().await;
        for who in &PRINCIPALS[1..] {
            let mut body = json!({
                "name": who.name,
                "tenant": who.tenant,
                "role": if who.admin { "admin" } else { "user" },
                "may_dial": who.may_dial,
            });
            if who.name == OWNER {
                body["password"] = json!("owner-password");
            }
            matrix.setup(Method::POST, "/api/v1/users", body, 201).await;
        }
        for (tenant, name) in SPARES {
            let body = json!({"name": name, "tenant": tenant});
            matrix.setup(Method::POST, "/api/v1/users", body, 201).await;
        }
        for who in &PRINCIPALS[1..] {
            for (instance, relation) in who.relations {
                let i = INSTANCES.iter().position(|x| x.name == *instance).unwrap();
                let line = matrix.lines[i][TARGET];
                let path = format!("/api/v1/users/{}/lines/{line}", who.name);
                match relation {
                    Own => {
                        let body = json!({"relation": "own"});
                        matrix.setup(Method::PUT, &path, body, 200).await;
                    }
                    Assigned(right) => {
                        let body = json!({"relation": "assigned", "right": right.word()});
                        matrix.setup(Method::PUT, &path, body, 200).await;
                    }
                    // Teams give the owner's own lines; see below.
                    Team(_) => {}
                }
            }
            let teams: BTreeSet<Right> = who
                .relations
                .iter()
                .filter_map(|(_, r)| match r {
                    Team(right) => Some(*right),
                    _ => None,
                })
                .collect();
            for right in teams {
                let team = format!("team-of-{}", who.name);
                let body =
                    json!({"name": team, "tenant": who.tenant, "member_right": right.word()});
                matrix.setup(Method::POST, "/api/v1/teams", body, 201).await;
                for member in [OWNER, who.name] {
                    let path = format!("/api/v1/teams/{team}/members/{member}");
                    matrix.setup(Method::PUT, &path, Value::Null, 204).await;
                }
            }
        }
        for who in PRINCIPALS {
            let token = if who.name == PRINCIPALS[0].name {
                matrix.server.token.clone()
            } else if who.name == OWNER {
                let body = json!({"user": OWNER, "password": "owner-password"});
                let (status, body) = send(
                    &common::http(),
                    Method::POST,
                    &matrix.url("/api/v1/login"),
                    Some(&body),
                )
                .await;
                assert_eq!(status, 200, "login as {OWNER}: {body}");
                body["token"].as_str().expect("a session token").to_owned()
            } else {
                let body = json!({"user": who.name, "label": "rights matrix"});
                let body = matrix
                    .setup(Method::POST, "/api/v1/tokens", body, 201)
                    .await;
                body["token"].as_str().expect("a token").to_owned()
            };
            matrix.clients.push(http_as(&token));
            matrix.tokens.push(token);
        }
        matrix
    }

    /// A setup request as the global administrator that must answer `status`.
    async fn setup(&self, method: Method, path: &str, body: Value, status: u16) -> Value {
        let body = (!body.is_null()).then_some(body);
        let (got, answer) = send(&self.root, method.clone(), &self.url(path), body.as_ref()).await;
        assert_eq!(got, status, "setup {method} {path} {body:?}: {answer}");
        answer
    }

    async fn find_lines(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (status, body) =
                send(&self.root, Method::GET, &self.url("/api/v1/lines"), None).await;
            assert_eq!(status, 200, "{body}");
            let found = |i: usize, e: usize| {
                body.as_array().and_then(|lines| {
                    lines.iter().find_map(|l| {
                        let here =
                            l["instance"] == INSTANCES[i].name && l["address"] == number(i, e);
                        here.then(|| l["id"].as_u64().expect("line id") as u32)
                    })
                })
            };
            let lines: Option<Vec<Vec<u32>>> = (0..INSTANCES.len())
                .map(|i| (0..EXTENSIONS).map(|e| found(i, e)).collect())
                .collect();
            if let Some(lines) = lines {
                self.lines = lines;
                return;
            }
            assert!(Instant::now() < deadline, "not every line appeared: {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn place(&self, i: usize, extension: usize) -> String {
        format!(
            "line {} ({} extension {})",
            self.lines[i][extension],
            INSTANCES[i].name,
            number(i, extension)
        )
    }

    fn fail(&mut self, who: &Principal, place: &str, action: &str, why: String) {
        self.failures
            .push(format!("{} / {place} / {action}: {why}", who.name));
    }

    /// The lines the principal may see, with its right on each.
    fn visible(&self, who: &Principal) -> BTreeMap<u32, Right> {
        let mut visible = BTreeMap::new();
        for (i, lines) in self.lines.iter().enumerate() {
            for (extension, line) in lines.iter().enumerate() {
                let right = who.right(i, extension);
                if right > Right::None {
                    visible.insert(*line, right);
                }
            }
        }
        visible
    }

    /// The calls on instance `i`'s lines, as the global administrator sees them.
    async fn calls_on(&self, i: usize) -> Vec<Value> {
        let (status, body) = send(&self.root, Method::GET, &self.url("/api/v1/calls"), None).await;
        assert_eq!(status, 200, "{body}");
        body.as_array()
            .expect("a list of calls")
            .iter()
            .filter(|c| {
                c["line"]
                    .as_u64()
                    .is_some_and(|l| self.lines[i].contains(&(l as u32)))
            })
            .cloned()
            .collect()
    }

    /// Drops every call on instance `i` until none is left.
    async fn clear(&self, i: usize) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let calls = self.calls_on(i).await;
            if calls.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "calls on {} do not go away: {calls:?}",
                INSTANCES[i].name
            );
            for call in &calls {
                let url = self.url(&format!("/api/v1/calls/{}/drop", call["id"]));
                send(&self.root, Method::POST, &url, Some(&json!({}))).await;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// As the global administrator: `from` calls `to` on instance `i`; the id of the call
    /// ringing at `to`.
    async fn dial(&self, i: usize, from: usize, to: usize) -> u64 {
        let url = self.url(&format!("/api/v1/lines/{}/calls", self.lines[i][from]));
        let body = json!({"to": number(i, to)});
        let (status, answer) = send(&self.root, Method::POST, &url, Some(&body)).await;
        assert_eq!(
            status,
            201,
            "{} calls {}: {answer}",
            number(i, from),
            number(i, to)
        );
        let line = u64::from(self.lines[i][to]);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let calls = self.calls_on(i).await;
            let ringing = calls
                .iter()
                .find(|c| c["line"].as_u64() == Some(line) && c["state"] == "offering");
            if let Some(call) = ringing {
                return call["id"].as_u64().expect("call id");
            }
            assert!(
                Instant::now() < deadline,
                "no call rings at {}: {calls:?}",
                number(i, to)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A fresh call ringing at instance `i`'s target line, nothing else on the instance.
    async fn ring_target(&self, i: usize) -> u64 {
        self.clear(i).await;
        self.dial(i, RINGER, TARGET).await
    }

    /// Sends `probe` as principal `w` and judges the answer; true when the request
    /// succeeded (and so may have changed something).
    async fn check(&mut self, w: usize, place: &str, probe: Probe, expected: Outcome) -> bool {
        let client = self.clients[w].clone();
        let (status, body) = send(
            &client,
            probe.method.clone(),
            &self.url(&probe.path),
            probe.body.as_ref(),
        )
        .await;
        let answer = Answer::rest(status, &body);
        let reference = if expected == Outcome::Invisible || status == 404 {
            let (status, body) = send(
                &client,
                probe.method.clone(),
                &self.url(&probe.missing_path),
                probe.missing_body.as_ref(),
            )
            .await;
            Some(Answer::rest(status, &body))
        } else {
            None
        };
        let ids = (probe.ids.0.as_str(), probe.ids.1.as_str());
        if let Some(why) = verdict(expected, &answer, reference.as_ref(), ids) {
            let action = format!("{} {}", probe.method, probe.path);
            self.fail(
                &PRINCIPALS[w],
                place,
                &format!("{} ({action})", probe.action),
                why,
            );
        }
        answer.succeeded()
    }

    /// Whole-server and per-principal answers over REST: lists, `/me`, reload, metrics, audit.
    async fn rest_principal(&mut self, w: usize) {
        let who = &PRINCIPALS[w];
        let client = self.clients[w].clone();
        let visible = self.visible(who);

        let (status, body) = send(&client, Method::GET, &self.url("/api/v1/lines"), None).await;
        let listed: BTreeSet<u32> = body
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|l| l["id"].as_u64())
                    .map(|id| id as u32)
                    .collect()
            })
            .unwrap_or_default();
        for (i, lines) in self.lines.clone().iter().enumerate() {
            for (extension, line) in lines.iter().enumerate() {
                let expected = visible.contains_key(line);
                if status != 200 || listed.contains(line) != expected {
                    let why = format!("expected listed: {expected}; got {status} {body}");
                    let place = self.place(i, extension);
                    self.fail(who, &place, "GET /api/v1/lines", why);
                }
            }
        }

        let (status, body) = send(&client, Method::GET, &self.url("/api/v1/me"), None).await;
        let rights: BTreeMap<u32, String> = body["lines"]
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|r| {
                        let line = r["line"].as_u64().unwrap_or_default() as u32;
                        (line, r["right"].as_str().unwrap_or("?").to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let expected: BTreeMap<u32, String> = visible
            .iter()
            .map(|(line, right)| (*line, right.word().to_owned()))
            .collect();
        if status != 200 || rights != expected {
            let why = format!("expected rights {expected:?}, got {status} {rights:?}");
            self.fail(who, "every line", "GET /api/v1/me", why);
        }

        let (status, body) = send(&client, Method::GET, &self.url("/api/v1/instances"), None).await;
        let names: BTreeSet<String> = body
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|i| i["name"].as_str())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let expected: BTreeSet<String> = INSTANCES
            .iter()
            .filter(|i| who.in_tenant(i.tenant))
            .map(|i| i.name.to_owned())
            .collect();
        if status != 200 || names != expected {
            let why = format!("expected {expected:?}, got {status} {body}");
            self.fail(who, "every instance", "GET /api/v1/instances", why);
        }

        let server_wide = [
            ("reload", Method::POST, "/api/v1/reload", who.global_admin()),
            ("metrics", Method::GET, "/metrics", who.global_admin()),
            ("audit", Method::GET, "/api/v1/audit", who.any_admin()),
        ];
        for (action, method, path, expected) in server_wide {
            let (status, body) = send(&client, method.clone(), &self.url(path), None).await;
            let answer = Answer::rest(status, &body);
            if let Some(why) = verdict(expected, &answer, None, ("", "")) {
                self.fail(who, "no line", &format!("{action} ({method} {path})"), why);
            }
        }
    }

    /// The audit log as tenant administrator `w`, once every earlier entry is written: the
    /// administrator changes a line nobody else of the matrix touches and waits for that.
    async fn settled_audit(&self, w: usize) -> Vec<Value> {
        let who = &PRINCIPALS[w];
        let tenant = who.tenant.expect("a tenant administrator");
        let i = INSTANCES
            .iter()
            .position(|x| x.tenant == tenant)
            .expect("an instance of the tenant");
        let sentinel = self.lines[i][MARKER_PEER];
        let url = self.url(&format!("/api/v1/lines/{sentinel}/dnd"));
        let (status, body) = send(
            &self.clients[w],
            Method::PUT,
            &url,
            Some(&json!({"enabled": false})),
        )
        .await;
        assert_eq!(status, 200, "{} sets DND on {sentinel}: {body}", who.name);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let url = self.url("/api/v1/audit?limit=10000");
            let (status, body) = send(&self.clients[w], Method::GET, &url, None).await;
            assert_eq!(status, 200, "{} reads the audit log: {body}", who.name);
            let entries = body.as_array().cloned().unwrap_or_default();
            let written = entries
                .iter()
                .any(|e| e["user"] == who.name && e["line"].as_u64() == Some(u64::from(sentinel)));
            if written {
                return entries;
            }
            assert!(
                Instant::now() < deadline,
                "the audit entry for DND on line {sentinel} is not written"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A tenant administrator's audit log names only its tenant and its tenant's lines, after
    /// the whole matrix (which includes its users' refused attempts on other tenants' lines).
    async fn audit_scope(&mut self) {
        for (w, who) in PRINCIPALS.iter().enumerate() {
            let (Some(tenant), true) = (who.tenant, who.admin) else {
                continue;
            };
            let foreign: BTreeSet<u64> = self
                .lines
                .iter()
                .zip(&INSTANCES)
                .filter(|(_, i)| i.tenant != tenant)
                .flat_map(|(lines, _)| lines.iter().map(|l| u64::from(*l)))
                .collect();
            for entry in self.settled_audit(w).await {
                let other_tenant = entry["tenant"].as_str() != Some(tenant);
                let other_line = entry["line"].as_u64().is_some_and(|l| foreign.contains(&l));
                if other_tenant || other_line {
                    let why = format!("an entry about another tenant: {entry}");
                    self.fail(who, "every line", "GET /api/v1/audit", why);
                }
            }
        }
    }

    /// Every line and call action of principal `w` on instance `i`'s target line, over REST.
    async fn rest_cell(&mut self, w: usize, i: usize) {
        let who = &PRINCIPALS[w];
        let client = self.clients[w].clone();
        let target = self.lines[i][TARGET];
        let place = self.place(i, TARGET);
        let monitor = who.outcome(i, TARGET, Need::Monitor);
        let mut call = self.ring_target(i).await;

        let probe = Probe::line("get line", Method::GET, target, "", Value::Null);
        let probe = Probe {
            body: None,
            missing_body: None,
            ..probe
        };
        self.check(w, &place, probe, monitor).await;

        // Calls on the instance (the target's ringing call and the ringer's) are listed
        // exactly where their lines are visible, with or without `?line=`.
        let url = self.url(&format!("/api/v1/calls?line={target}"));
        let (status, body) = send(&client, Method::GET, &url, None).await;
        let ids: Vec<u64> = body
            .as_array()
            .map(|l| l.iter().filter_map(|c| c["id"].as_u64()).collect())
            .unwrap_or_default();
        let expected = monitor == Outcome::Allowed;
        if status != 200 || ids.contains(&call) != expected || ids.len() > 1 {
            let why = format!("expected call {call} listed: {expected}; got {status} {body}");
            self.fail(who, &place, "GET /api/v1/calls?line=", why);
        }
        let (status, body) = send(&client, Method::GET, &self.url("/api/v1/calls"), None).await;
        let on_instance: BTreeSet<u32> = body
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["line"].as_u64().map(|l| l as u32))
            .filter(|l| self.lines[i].contains(l))
            .collect();
        let expected: BTreeSet<u32> = [TARGET, RINGER]
            .into_iter()
            .filter(|e| who.right(i, *e) > Right::None)
            .map(|e| self.lines[i][e])
            .collect();
        if status != 200 || on_instance != expected {
            let why = format!("expected calls on lines {expected:?}, got {status} {body}");
            self.fail(who, &place, "GET /api/v1/calls", why);
        }

        let probe = Probe {
            action: "get call",
            method: Method::GET,
            path: format!("/api/v1/calls/{call}"),
            body: None,
            missing_path: format!("/api/v1/calls/{MISSING_ID}"),
            missing_body: None,
            ids: (call.to_string(), MISSING_ID.into()),
        };
        self.check(w, &place, probe, monitor).await;

        // Call actions, each on a freshly ringing call once one has succeeded.
        let to = number(i, DESTINATION);
        let actions: [(&str, Need, Value); 10] = [
            ("hold", Need::Control, json!({})),
            ("unhold", Need::Control, json!({})),
            ("park", Need::Control, json!({})),
            ("transfer", Need::Control, json!({"to": to})),
            ("consult", Need::Dial, json!({"to": to})),
            ("digits", Need::Control, json!({"digits": "1"})),
            ("accept", Need::Control, json!({})),
            ("answer", Need::Control, json!({})),
            ("redirect", Need::Control, json!({"to": to})),
            ("drop", Need::Dial, json!({})),
        ];
        let mut dirty = false;
        for (action, need, body) in actions {
            if dirty {
                call = self.ring_target(i).await;
            }
            let probe = Probe::call(action, call, body);
            dirty = self
                .check(w, &place, probe, who.outcome(i, TARGET, need))
                .await;
        }

        // Picking the ringing call up onto a line the principal controls needs monitor on it.
        if dirty {
            call = self.ring_target(i).await;
        }
        let picker = self.lines[who.open_instance()][PICKER];
        let probe = Probe::call("pickup", call, json!({"line": picker}));
        self.check(w, &place, probe, monitor).await;

        let control = who.outcome(i, TARGET, Need::Control);
        let probes = [
            (
                Probe::line(
                    "make call",
                    Method::POST,
                    target,
                    "/calls",
                    json!({"to": to}),
                ),
                who.outcome(i, TARGET, Need::Dial),
            ),
            (
                Probe::line(
                    "forwards",
                    Method::PUT,
                    target,
                    "/forwards",
                    json!({"forwards": []}),
                ),
                control,
            ),
            (
                Probe::line(
                    "dnd",
                    Method::PUT,
                    target,
                    "/dnd",
                    json!({"enabled": false}),
                ),
                control,
            ),
            (
                Probe {
                    body: Some(json!({"from_line": target})),
                    missing_body: Some(json!({"from_line": MISSING_ID.parse::<u32>().unwrap()})),
                    ..Probe::line("pickup onto", Method::POST, target, "/pickup", Value::Null)
                },
                control,
            ),
            (
                Probe::line(
                    "unpark",
                    Method::POST,
                    target,
                    "/unpark",
                    json!({"from": "720"}),
                ),
                control,
            ),
            (
                Probe::line(
                    "sim",
                    Method::POST,
                    target,
                    "/sim",
                    json!({"action": "on_hook"}),
                ),
                control,
            ),
            (
                Probe {
                    action: "assign",
                    method: Method::PUT,
                    path: format!("/api/v1/users/{}/lines/{target}", who.assignee(i)),
                    body: Some(json!({"relation": "assigned", "right": "monitor"})),
                    missing_path: format!("/api/v1/users/{}/lines/{MISSING_ID}", who.assignee(i)),
                    missing_body: Some(json!({"relation": "assigned", "right": "monitor"})),
                    ids: (target.to_string(), MISSING_ID.into()),
                },
                who.assign(i),
            ),
        ];
        for (probe, expected) in probes {
            self.check(w, &place, probe, expected).await;
        }

        let name = INSTANCES[i].name;
        let place = format!("instance {name}");
        let existing = number(i, MARKER);
        let probes = [
            (
                Probe::instance("test", Method::POST, name, "/test", json!({})),
                who.administer(i, Outcome::Forbidden),
            ),
            (
                Probe::instance(
                    "log",
                    Method::PUT,
                    name,
                    "/log",
                    json!({"level": "default"}),
                ),
                who.administer(i, Outcome::Forbidden),
            ),
            (
                Probe::instance(
                    "instance sim",
                    Method::POST,
                    name,
                    "/sim",
                    json!({"action": "add_extension", "number": existing}),
                ),
                who.administer(i, Outcome::Forbidden),
            ),
        ];
        for (probe, expected) in probes {
            self.check(w, &place, probe, expected).await;
        }
    }

    /// Sends a WebSocket command and returns its result.
    async fn command(ws: &mut Ws, id: &str, mut command: Value) -> Answer {
        command["type"] = json!("command");
        command["id"] = json!(id);
        ws.send(command).await;
        let messages = ws
            .until(|m| matches!(m, ServerMessage::Result { id: got, .. } if got == id))
            .await;
        Answer::ws(messages.last().expect("a result"))
    }

    /// The WebSocket as principal `w`: the snapshot, commands on every target line, and the
    /// events of calls on every target line.
    async fn ws_principal(&mut self, w: usize) {
        let who = &PRINCIPALS[w];
        let visible = self.visible(who);
        let mut calls = Vec::new();
        for i in 0..INSTANCES.len() {
            calls.push(self.ring_target(i).await);
        }

        let mut ws = Ws::connect_as(&self.server, &self.tokens[w]).await;
        ws.send(json!({"type": "subscribe"})).await;
        let ServerMessage::Snapshot(snapshot) = ws.next().await else {
            self.fail(
                who,
                "every line",
                "ws subscribe",
                "no snapshot first".into(),
            );
            return;
        };
        let lines: BTreeSet<u32> = snapshot.lines.iter().map(|l| l.id).collect();
        let expected: BTreeSet<u32> = visible.keys().copied().collect();
        if lines != expected {
            let why = format!("expected lines {expected:?}, got {lines:?}");
            self.fail(who, "every line", "ws snapshot", why);
        }
        let names: BTreeSet<&str> = snapshot.instances.iter().map(|i| i.name.as_str()).collect();
        let expected: BTreeSet<&str> = INSTANCES
            .iter()
            .filter(|i| who.in_tenant(i.tenant))
            .map(|i| i.name)
            .collect();
        if names != expected {
            let why = format!("expected instances {expected:?}, got {names:?}");
            self.fail(who, "every instance", "ws snapshot", why);
        }
        let call_lines: BTreeSet<u32> = snapshot.calls.iter().map(|c| c.line).collect();
        let expected: BTreeSet<u32> = self
            .lines
            .iter()
            .flat_map(|l| [l[TARGET], l[RINGER]])
            .filter(|l| visible.contains_key(l))
            .collect();
        if call_lines != expected {
            let why = format!("expected calls on lines {expected:?}, got {call_lines:?}");
            self.fail(who, "every line", "ws snapshot calls", why);
        }

        for (i, call) in calls.into_iter().enumerate() {
            let target = self.lines[i][TARGET];
            let place = self.place(i, TARGET);
            let to = number(i, DESTINATION);
            let commands = [
                (
                    "answer",
                    Need::Control,
                    json!({"command": "answer", "call": call}),
                ),
                (
                    "hold",
                    Need::Control,
                    json!({"command": "hold", "call": call}),
                ),
                ("drop", Need::Dial, json!({"command": "drop", "call": call})),
                (
                    "make_call",
                    Need::Dial,
                    json!({"command": "make_call", "line": target, "to": to}),
                ),
            ];
            for (n, (action, need, command)) in commands.into_iter().enumerate() {
                let expected = who.outcome(i, TARGET, need);
                let id = format!("{i}-{n}");
                let answer = Self::command(&mut ws, &id, command.clone()).await;
                let (real, reference) = if action == "make_call" {
                    let mut missing = command;
                    missing["line"] = json!(MISSING_ID.parse::<u32>().unwrap());
                    (target.to_string(), missing)
                } else {
                    let mut missing = command;
                    missing["call"] = json!(MISSING_ID.parse::<u64>().unwrap());
                    (call.to_string(), missing)
                };
                let reference = if expected == Outcome::Invisible {
                    Some(Self::command(&mut ws, &format!("{id}-missing"), reference).await)
                } else {
                    None
                };
                let ids = (real.as_str(), MISSING_ID);
                if let Some(why) = verdict(expected, &answer, reference.as_ref(), ids) {
                    self.fail(who, &place, &format!("ws command {action}"), why);
                }
            }
        }
        drop(ws);

        // Events: the global administrator calls from every target line; the principal hears
        // of exactly the calls on lines it sees. A marker call on a line it sees ends the wait.
        for i in 0..INSTANCES.len() {
            self.clear(i).await;
        }
        let mut ws = Ws::connect_as(&self.server, &self.tokens[w]).await;
        ws.send(json!({"type": "subscribe"})).await;
        let first = ws.next().await;
        if !matches!(first, ServerMessage::Snapshot(_)) {
            let why = format!("expected a snapshot, got {first:?}");
            self.fail(who, "every line", "ws subscribe", why);
        }
        for i in 0..INSTANCES.len() {
            self.dial(i, TARGET, DESTINATION).await;
        }
        let open = who.open_instance();
        let marker = self.lines[open][MARKER];
        self.dial(open, MARKER, MARKER_PEER).await;
        let messages = ws
            .until(|m| {
                matches!(m, ServerMessage::Event(e)
                    if matches!(&e.event, EventDto::CallNew { call } if call.line == marker))
            })
            .await;
        let mut heard = BTreeSet::new();
        for message in &messages {
            match message {
                ServerMessage::Event(e) => {
                    if let EventDto::InstanceChanged { instance } = &e.event {
                        let tenant = INSTANCES.iter().find(|i| i.name == instance.name);
                        if !tenant.is_some_and(|i| who.in_tenant(i.tenant)) {
                            let why = format!("heard of instance {}", instance.name);
                            self.fail(who, "every instance", "ws events", why);
                        }
                    }
                    let Some(line) = e.event.line() else { continue };
                    if !visible.contains_key(&line) {
                        let why = format!("an event about an invisible line: {e:?}");
                        self.fail(who, &format!("line {line}"), "ws events", why);
                    }
                    if line != marker {
                        heard.insert(line);
                    }
                }
                other => {
                    let why = format!("unexpected message {other:?}");
                    self.fail(who, "every line", "ws events", why);
                }
            }
        }
        let expected: BTreeSet<u32> = self
            .lines
            .iter()
            .flat_map(|l| [l[TARGET], l[DESTINATION]])
            .filter(|l| visible.contains_key(l))
            .collect();
        if heard != expected {
            let why = format!("expected events about lines {expected:?}, got {heard:?}");
            self.fail(who, "every target and dialled line", "ws events", why);
        }
        for i in 0..INSTANCES.len() {
            self.clear(i).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_for_every_role_and_relation_over_rest_and_websocket() {
    let mut matrix = Matrix::start().await;
    for w in 0..PRINCIPALS.len() {
        matrix.rest_principal(w).await;
        for i in 0..INSTANCES.len() {
            matrix.rest_cell(w, i).await;
        }
    }
    for w in 0..PRINCIPALS.len() {
        matrix.ws_principal(w).await;
    }
    matrix.audit_scope().await;
    assert!(
        matrix.failures.is_empty(),
        "{} cells of the rights matrix differ from the table:\n{}",
        matrix.failures.len(),
        matrix.failures.join("\n")
    );
}

fn principal(name: &str) -> usize {
    PRINCIPALS
        .iter()
        .position(|p| p.name == name)
        .expect("a principal of the matrix")
}

/// A refused action on a call the caller cannot see must leave the same audit entry as one on
/// a call that does not exist: otherwise the tenant's administrator would learn which of
/// another tenant's call ids exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_action_on_another_tenants_call_is_audited_like_a_missing_call() {
    let matrix = Matrix::start().await;
    let stranger = principal("stranger");
    let call = matrix.ring_target(GLOBEX_OPEN).await;
    for id in [call.to_string(), MISSING_ID.to_string()] {
        let url = matrix.url(&format!("/api/v1/calls/{id}/answer"));
        let (status, body) = send(
            &matrix.clients[stranger],
            Method::POST,
            &url,
            Some(&json!({})),
        )
        .await;
        assert_eq!(status, 404, "stranger answers call {id}: {body}");
    }
    let entries = matrix.settled_audit(principal("acme-admin")).await;
    let answers: Vec<Value> = entries
        .into_iter()
        .filter(|e| e["user"] == "stranger" && e["action"] == "answer")
        .map(|mut e| {
            e["at"] = Value::Null;
            e
        })
        .collect();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(
        answers[0], answers[1],
        "answering invisible call {call} and missing call {MISSING_ID} are audited alike"
    );
}
