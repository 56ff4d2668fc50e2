//! Two tenants on one server: no event, list, error message or metric of one tenant reaches a
//! client of the other, also while both place calls at the same time.
//!
//! `alpha` (tenant `acme`, extensions 201-210) and `beta` (tenant `globex`, 301-310) are
//! simulated PBXs in server-application mode, so every user of a tenant sees all its lines.
//! Each tenant has an administrator and a user. The global administrator's own subscription
//! sees everything and is the reference for what each tenant's clients must (and must not)
//! receive.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{PATIENCE, Server, Ws, request_as};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const CONFIG: &str = r#"
[[instances]]
name = "alpha"
tenant = "acme"
mode = "server_application"
[instances.driver]
type = "sim"
extensions = 10
first_extension = 201
auto_answer = ["206", "207", "208"]
auto_answer_delay_ms = 5

[[instances]]
name = "beta"
tenant = "globex"
mode = "server_application"
[instances.driver]
type = "sim"
extensions = 10
first_extension = 301
auto_answer = ["306", "307", "308"]
auto_answer_delay_ms = 5
"#;

/// Calls each workload task places, one after the other.
const ROUNDS: usize = 8;

const PASSWORD: &str = "tenant secret 1";

/// Line offsets within a tenant's extensions (201 + offset, 301 + offset).
const REST_FROM: u32 = 0; // the user's calls to an auto-answering extension
const WS_FROM: u32 = 1; // the tenant administrator's calls over WebSocket commands
const MANUAL_FROM: u32 = 2; // the user's calls that the callee answers by command
const MANUAL_TO: u32 = 3;
const GLOBAL_FROM: u32 = 4; // the global administrator's calls
const REST_TO: u32 = 5;
const WS_TO: u32 = 6;
const GLOBAL_TO: u32 = 7;
const LIVE_FROM: u32 = 8; // a call left ringing for the error probes
const MARKER: u32 = 9; // do-not-disturb here marks the end of a tenant's events

/// The REST API of one server, cheap to clone into tasks. One HTTP client for all
/// requests: a client per request would cost more than the requests.
#[derive(Clone)]
struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    /// Any request as `token` (none when empty): the status and the JSON body (a string
    /// when it is not JSON, `null` when empty).
    async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
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

    /// A request that must succeed; `who` names the caller in the failure message.
    async fn ok(
        &self,
        who: &str,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (status, answer) = self.call(token, method.clone(), path, body).await;
        assert!(
            (200..300).contains(&status),
            "{who}: {method} {path} answered {status}: {answer}"
        );
        answer
    }
}

#[derive(Clone)]
struct Account {
    name: String,
    token: String,
}

struct Tenant {
    name: &'static str,
    instance: &'static str,
    first: u32,
    admin: Account,
    user: Account,
    team: String,
    /// Line id by extension.
    lines: BTreeMap<String, u32>,
}

impl Tenant {
    fn ext(&self, offset: u32) -> String {
        (self.first + offset).to_string()
    }

    fn line(&self, offset: u32) -> u32 {
        self.lines[&self.ext(offset)]
    }

    fn line_ids(&self) -> BTreeSet<u32> {
        self.lines.values().copied().collect()
    }

    fn user_names(&self) -> BTreeSet<String> {
        [self.admin.name.clone(), self.user.name.clone()].into()
    }

    /// The tenant's principals, each with a description for failure messages.
    fn principals(&self) -> [(String, &Account, bool); 2] {
        [
            (
                format!("{} admin {:?}", self.name, self.admin.name),
                &self.admin,
                true,
            ),
            (
                format!("{} user {:?}", self.name, self.user.name),
                &self.user,
                false,
            ),
        ]
    }

    /// Words that must never appear in what this tenant's clients get about `other`.
    fn secrets_of(other: &Tenant) -> Vec<String> {
        vec![
            other.name.to_owned(),
            other.instance.to_owned(),
            other.admin.name.clone(),
            other.user.name.clone(),
            other.team.clone(),
        ]
    }
}

async fn wait_until_up(api: &Api, token: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, instances) = api.call(token, Method::GET, "/instances", None).await;
        let up = instances.as_array().is_some_and(|all| {
            all.len() == 2 && all.iter().all(|i| i["status"] == "up" && i["lines"] == 10)
        });
        if up {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the instances did not come up: {instances}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A tenant's accounts: the global administrator makes the tenant administrator (who logs
/// in); the tenant administrator makes its user, a token for it, a team and an assignment.
async fn create_tenant(
    api: &Api,
    global: &str,
    name: &'static str,
    instance: &'static str,
    first: u32,
) -> Tenant {
    let admin_name = format!("{name}-admin");
    let body = json!({"name": admin_name, "tenant": name, "role": "admin", "password": PASSWORD});
    api.ok("global admin", global, Method::POST, "/users", Some(body))
        .await;
    let body = json!({"user": admin_name, "password": PASSWORD});
    let login = api
        .ok("login", "", Method::POST, "/login", Some(body))
        .await;
    let admin = Account {
        name: admin_name,
        token: login["token"].as_str().expect("a login token").to_owned(),
    };

    let user_name = format!("{name}-user");
    let who = format!("{name} admin");
    let body = json!({"name": user_name, "role": "user"});
    let created = api
        .ok(&who, &admin.token, Method::POST, "/users", Some(body))
        .await;
    assert_eq!(
        created["tenant"], name,
        "a tenant administrator's new user is in its tenant"
    );
    let body = json!({"user": user_name, "label": format!("{name}-app")});
    let issued = api
        .ok(&who, &admin.token, Method::POST, "/tokens", Some(body))
        .await;
    let user = Account {
        name: user_name,
        token: issued["token"].as_str().expect("a token").to_owned(),
    };

    let team = format!("{name}-team");
    let body = json!({"name": team, "member_right": "monitor"});
    api.ok(&who, &admin.token, Method::POST, "/teams", Some(body))
        .await;
    let path = format!("/teams/{team}/members/{}", user.name);
    api.ok(&who, &admin.token, Method::PUT, &path, None).await;

    let listed = api
        .ok(&who, &admin.token, Method::GET, "/lines", None)
        .await;
    let lines: BTreeMap<String, u32> = listed
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| {
            (
                l["address"].as_str().unwrap().to_owned(),
                l["id"].as_u64().unwrap() as u32,
            )
        })
        .collect();
    let tenant = Tenant {
        name,
        instance,
        first,
        admin,
        user,
        team,
        lines,
    };
    let expected: BTreeSet<String> = (0..10).map(|o| tenant.ext(o)).collect();
    assert_eq!(
        tenant.lines.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "{name} admin lists exactly its own extensions"
    );
    let path = format!("/users/{}/lines/{}", tenant.user.name, tenant.line(0));
    api.ok(&who, &tenant.admin.token, Method::PUT, &path, None)
        .await;
    tenant
}

async fn setup(server: &Server) -> (Api, Tenant, Tenant, String) {
    let api = Api {
        base: server.api(""),
        client: common::http(),
    };
    wait_until_up(&api, &server.token).await;
    let acme = create_tenant(&api, &server.token, "acme", "alpha", 201).await;
    let globex = create_tenant(&api, &server.token, "globex", "beta", 301).await;
    let me = api
        .ok("global admin", &server.token, Method::GET, "/me", None)
        .await;
    let global_name = me["user"]["name"].as_str().expect("a name").to_owned();
    (api, acme, globex, global_name)
}

// ---------------------------------------------------------------------------------------
// Event streams

/// Everything one WebSocket subscriber received: the snapshot first, then events.
struct Stream {
    who: String,
    /// The sequence number the stream starts after: its snapshot's, or the one it resumed
    /// from.
    after: u64,
    /// Raw text of every message, in order, starting with the snapshot if there is one.
    texts: Vec<String>,
    /// True when the subscriber saw all the markers it waited for.
    complete: bool,
}

impl Stream {
    fn messages(&self) -> Vec<Value> {
        self.texts
            .iter()
            .map(|t| serde_json::from_str(t).expect("server messages are JSON"))
            .collect()
    }

    fn snapshot(&self) -> Value {
        self.messages()
            .into_iter()
            .next()
            .expect("the snapshot comes first")
    }

    /// The events with their raw text.
    fn events(&self) -> Vec<(Value, &str)> {
        self.texts
            .iter()
            .map(|t| (serde_json::from_str::<Value>(t).unwrap(), t.as_str()))
            .filter(|(m, _)| m["type"] == "event")
            .collect()
    }
}

async fn next_text(ws: &mut Ws, wait: Duration) -> Option<String> {
    loop {
        let message = tokio::time::timeout(wait, ws.socket.next())
            .await
            .ok()??
            .ok()?;
        if let Message::Text(text) = message {
            return Some(text.to_string());
        }
    }
}

/// True when `message` is the event that sets do-not-disturb on `line`.
fn is_marker(message: &Value, line: u32) -> bool {
    message["type"] == "event"
        && message["event"] == "line_changed"
        && message["line"]["id"] == line
        && message["line"]["do_not_disturb"] == true
}

/// Subscribes as `token` (resuming after `since` when given) and, once the subscription
/// is in effect, collects everything in a task until the do-not-disturb events of all
/// `markers` lines came.
async fn subscribe(
    server: &Server,
    who: String,
    token: &str,
    since: Option<u64>,
    markers: Vec<u32>,
) -> tokio::task::JoinHandle<Stream> {
    let mut ws = Ws::connect_as(server, token).await;
    let mut texts = Vec::new();
    let after = match since {
        Some(since) => {
            ws.send(json!({"type": "subscribe", "since": since})).await;
            since
        }
        None => {
            ws.send(json!({"type": "subscribe"})).await;
            let snapshot = next_text(&mut ws, PATIENCE)
                .await
                .unwrap_or_else(|| panic!("{who}: no snapshot"));
            let message: Value = serde_json::from_str(&snapshot).unwrap();
            assert_eq!(message["type"], "snapshot", "{who}: {snapshot}");
            texts.push(snapshot);
            message["seq"].as_u64().unwrap()
        }
    };
    tokio::spawn(async move {
        let mut after = after;
        let mut waiting = markers;
        // Generous: the whole workload runs while this task collects.
        let deadline = Instant::now() + 4 * PATIENCE;
        while !waiting.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(text) = next_text(&mut ws, left).await else {
                break;
            };
            let message: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if texts.is_empty() && message["type"] == "snapshot" {
                // Too far behind to resume: the stream starts over.
                after = message["seq"].as_u64().unwrap();
            }
            waiting.retain(|line| !is_marker(&message, *line));
            texts.push(text);
        }
        Stream {
            who,
            after,
            complete: waiting.is_empty(),
            texts,
        }
    })
}

/// Who owns which instance, line and call: learnt from the global administrator's stream.
struct World {
    line_tenant: HashMap<u32, &'static str>,
    call_tenant: HashMap<u64, &'static str>,
}

impl World {
    fn learn(global: &Stream, tenants: [&Tenant; 2]) -> World {
        let instance_tenant: HashMap<&str, &'static str> =
            tenants.iter().map(|t| (t.instance, t.name)).collect();
        let mut world = World {
            line_tenant: HashMap::new(),
            call_tenant: HashMap::new(),
        };
        let snapshot = global.snapshot();
        for line in snapshot["lines"].as_array().unwrap() {
            let tenant = instance_tenant[line["instance"].as_str().unwrap()];
            world
                .line_tenant
                .insert(line["id"].as_u64().unwrap() as u32, tenant);
        }
        for tenant in tenants {
            for id in tenant.lines.values() {
                assert_eq!(world.line_tenant.get(id), Some(&tenant.name));
            }
        }
        for (event, _) in global.events() {
            if let Some(call) = event.get("call").filter(|c| c.is_object()) {
                let line = call["line"].as_u64().unwrap() as u32;
                world
                    .call_tenant
                    .insert(call["id"].as_u64().unwrap(), world.line_tenant[&line]);
            }
        }
        world
    }

    fn calls_of(&self, tenant: &str) -> BTreeSet<u64> {
        self.call_tenant
            .iter()
            .filter(|(_, t)| **t == tenant)
            .map(|(c, _)| *c)
            .collect()
    }
}

/// The lines, calls and instances a server message refers to.
#[derive(Default, Debug)]
struct Refs {
    lines: Vec<u32>,
    calls: Vec<u64>,
    instances: Vec<String>,
}

fn refs_of_call(call: &Value, refs: &mut Refs) {
    refs.calls.push(call["id"].as_u64().expect("call id"));
    refs.lines
        .push(call["line"].as_u64().expect("call line") as u32);
    for key in ["related", "conference"] {
        if let Some(other) = call[key].as_u64() {
            refs.calls.push(other);
        }
    }
}

fn refs_of_line(line: &Value, refs: &mut Refs) {
    refs.lines
        .push(line["id"].as_u64().expect("line id") as u32);
    refs.instances
        .push(line["instance"].as_str().expect("instance").to_owned());
}

fn refs_of(message: &Value) -> Refs {
    let mut refs = Refs::default();
    match message["type"].as_str() {
        Some("snapshot") => {
            for instance in message["instances"].as_array().unwrap() {
                refs.instances
                    .push(instance["name"].as_str().unwrap().to_owned());
            }
            for line in message["lines"].as_array().unwrap() {
                refs_of_line(line, &mut refs);
            }
            for call in message["calls"].as_array().unwrap() {
                refs_of_call(call, &mut refs);
            }
        }
        Some("event") => match message["event"].as_str() {
            Some("line_created" | "line_changed") => refs_of_line(&message["line"], &mut refs),
            Some("line_removed" | "line_purged") => {
                refs.lines.push(message["line"].as_u64().unwrap() as u32);
                refs.instances
                    .push(message["instance"].as_str().unwrap().to_owned());
            }
            Some("instance_changed") => refs
                .instances
                .push(message["instance"]["name"].as_str().unwrap().to_owned()),
            _ => refs_of_call(&message["call"], &mut refs),
        },
        _ => {}
    }
    refs
}

/// Every string in `value`, recursively.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// What `text` (a server answer or message seen by a client of `own`) gives away of
/// `other`: its names anywhere in the text, and its extensions as any string value.
fn secrets_in(text: &str, own: &Tenant, other: &Tenant) -> Vec<String> {
    let mut found: Vec<String> = Tenant::secrets_of(other)
        .into_iter()
        .filter(|secret| text.contains(secret.as_str()))
        .map(|secret| format!("the name {secret:?}"))
        .collect();
    let extensions: BTreeSet<String> = other.lines.keys().cloned().collect();
    let mut values = Vec::new();
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        strings(&value, &mut values);
    }
    found.extend(
        values
            .into_iter()
            .filter(|s| extensions.contains(s) && !own.lines.contains_key(s))
            .map(|s| format!("{}'s extension {s:?}", other.name)),
    );
    found
}

/// The events of the global stream that a client of `tenant` must see, between `after`
/// (its snapshot) and `until` (its marker), both by sequence number.
fn expected_for(global: &Stream, tenant: &Tenant, after: u64, until: u64) -> Vec<(u64, String)> {
    let lines = tenant.line_ids();
    global
        .events()
        .into_iter()
        .filter(|(e, _)| {
            let seq = e["seq"].as_u64().unwrap();
            seq > after && seq <= until
        })
        .filter(|(e, _)| {
            let refs = refs_of(e);
            refs.lines.iter().any(|l| lines.contains(l))
                || (refs.lines.is_empty() && refs.instances.iter().any(|i| i == tenant.instance))
        })
        .map(|(e, text)| (e["seq"].as_u64().unwrap(), text.to_owned()))
        .collect()
}

/// Everything wrong with what a client of `own` received; empty when nothing is.
fn check_stream(
    stream: &Stream,
    own: &Tenant,
    other: &Tenant,
    world: &World,
    global: &Stream,
) -> Vec<String> {
    let who = &stream.who;
    let mut problems = Vec::new();
    if !stream.complete {
        problems.push(format!(
            "{who} never received the event that marks the end of {}'s calls",
            own.name
        ));
    }
    let own_lines = own.line_ids();
    let messages = stream.messages();
    if let Some(snapshot) = messages.first().filter(|m| m["type"] == "snapshot") {
        let lines: BTreeSet<u32> = refs_of(snapshot).lines.into_iter().collect();
        if lines != own_lines {
            problems.push(format!(
                "{who}'s snapshot lists lines {lines:?}, not {}'s {own_lines:?}",
                own.name
            ));
        }
    }
    let mut last = stream.after;
    for (message, text) in messages.iter().zip(&stream.texts) {
        let kind = message["type"].as_str().unwrap_or("?");
        if kind != "snapshot" && kind != "event" {
            problems.push(format!("{who} received an unexpected {kind}: {text}"));
        }
        if kind == "event" {
            let seq = message["seq"].as_u64().unwrap();
            if seq <= last {
                problems.push(format!("{who} received seq {seq} after seq {last}"));
            }
            last = seq;
        }
        let refs = refs_of(message);
        for line in &refs.lines {
            if !own_lines.contains(line) {
                let owner = world.line_tenant.get(line).copied().unwrap_or("nobody");
                problems.push(format!("{who} received line {line} of {owner}: {text}"));
            }
        }
        for call in &refs.calls {
            let owner = world.call_tenant.get(call).copied();
            if owner != Some(own.name) {
                problems.push(format!(
                    "{who} received call {call} of {}: {text}",
                    owner.unwrap_or("an unknown tenant")
                ));
            }
        }
        for instance in &refs.instances {
            if instance != own.instance {
                problems.push(format!("{who} received instance {instance:?}: {text}"));
            }
        }
        for secret in secrets_in(text, own, other) {
            problems.push(format!("{who} received {secret}: {text}"));
        }
    }

    // Every event of the tenant's own lines, in the same order and with the same content as
    // the global administrator got it.
    let marker = global
        .events()
        .into_iter()
        .find(|(e, _)| is_marker(e, own.line(MARKER)))
        .map(|(e, _)| e["seq"].as_u64().unwrap())
        .expect("the global stream has every marker");
    let expected = expected_for(global, own, stream.after, marker);
    let received: Vec<(u64, String)> = stream
        .events()
        .into_iter()
        .map(|(e, text)| (e["seq"].as_u64().unwrap(), text.to_owned()))
        .collect();
    if received != expected {
        let seqs = |list: &[(u64, String)]| list.iter().map(|(s, _)| *s).collect::<BTreeSet<_>>();
        let (got, want) = (seqs(&received), seqs(&expected));
        let missing: Vec<_> = want.difference(&got).collect();
        let extra: Vec<_> = got.difference(&want).collect();
        let differing: Vec<_> = received
            .iter()
            .filter(|r| expected.iter().any(|e| e.0 == r.0 && e.1 != r.1))
            .map(|r| r.0)
            .collect();
        problems.push(format!(
            "{who} did not receive exactly {}'s events: {} expected, {} received; missing seqs \
             {missing:?}, extra seqs {extra:?}, different content at seqs {differing:?}",
            own.name,
            expected.len(),
            received.len(),
        ));
    }
    let own_calls: BTreeSet<u64> = expected
        .iter()
        .flat_map(|(_, t)| refs_of(&serde_json::from_str(t).unwrap()).calls)
        .collect();
    let seen_calls: BTreeSet<u64> = received
        .iter()
        .flat_map(|(_, t)| refs_of(&serde_json::from_str(t).unwrap()).calls)
        .collect();
    if !own_calls.is_subset(&seen_calls) {
        problems.push(format!(
            "{who} never heard of {}'s calls {:?}",
            own.name,
            own_calls.difference(&seen_calls).collect::<Vec<_>>()
        ));
    }
    problems
}

// ---------------------------------------------------------------------------------------
// Workload

/// The state of call `id` as `token` sees it; `None` once it is gone.
async fn call_state(api: &Api, token: &str, id: u64) -> Option<String> {
    let (status, call) = api
        .call(token, Method::GET, &format!("/calls/{id}"), None)
        .await;
    (status == 200).then(|| call["state"].as_str().unwrap_or_default().to_owned())
}

async fn wait_state(api: &Api, who: &str, token: &str, id: u64, want: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let state = call_state(api, token, id).await;
        if state.as_deref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{who}: call {id} is {state:?}, never {want}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn calls_on(api: &Api, token: &str, line: u32) -> Vec<Value> {
    let (status, calls) = api
        .call(token, Method::GET, &format!("/calls?line={line}"), None)
        .await;
    assert_eq!(status, 200, "{calls}");
    calls.as_array().cloned().unwrap_or_default()
}

async fn wait_idle(api: &Api, who: &str, token: &str, lines: &[u32]) {
    let deadline = Instant::now() + PATIENCE;
    for line in lines {
        loop {
            let calls = calls_on(api, token, *line).await;
            if calls.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{who}: line {line} still has calls {calls:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Calls to an auto-answering extension over REST: place, hold, take back, drop.
async fn rest_calls(api: Api, who: String, token: String, from: u32, to: (u32, String)) {
    for _ in 0..ROUNDS {
        let path = format!("/lines/{from}/calls");
        let placed = api
            .ok(&who, &token, Method::POST, &path, Some(json!({"to": to.1})))
            .await;
        let call = placed["call"].as_u64().expect("the new call");
        wait_state(&api, &who, &token, call, "connected").await;
        for (action, state) in [("hold", "onhold"), ("unhold", "connected")] {
            let path = format!("/calls/{call}/{action}");
            api.ok(&who, &token, Method::POST, &path, None).await;
            wait_state(&api, &who, &token, call, state).await;
        }
        let path = format!("/calls/{call}/drop");
        api.ok(&who, &token, Method::POST, &path, None).await;
        wait_idle(&api, &who, &token, &[from, to.0]).await;
    }
}

/// Calls answered by command on the called line; each side drops every other one.
async fn answered_calls(api: Api, who: String, token: String, from: u32, to: (u32, String)) {
    for round in 0..ROUNDS {
        let path = format!("/lines/{from}/calls");
        let placed = api
            .ok(&who, &token, Method::POST, &path, Some(json!({"to": to.1})))
            .await;
        let call = placed["call"].as_u64().expect("the new call");
        let deadline = Instant::now() + PATIENCE;
        let ringing = loop {
            let calls = calls_on(&api, &token, to.0).await;
            let answerable = calls.into_iter().find(|c| {
                c["features"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|f| f == "answer"))
            });
            if let Some(c) = answerable {
                break c["id"].as_u64().unwrap();
            }
            assert!(Instant::now() < deadline, "{who}: {} never rang", to.1);
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let path = format!("/calls/{ringing}/answer");
        api.ok(&who, &token, Method::POST, &path, None).await;
        wait_state(&api, &who, &token, call, "connected").await;
        wait_state(&api, &who, &token, ringing, "connected").await;
        let dropping = if round % 2 == 0 { call } else { ringing };
        let path = format!("/calls/{dropping}/drop");
        api.ok(&who, &token, Method::POST, &path, None).await;
        wait_idle(&api, &who, &token, &[from, to.0]).await;
    }
}

/// Reads the result of command `id`; this socket is not subscribed, so results are all
/// it gets.
async fn ws_result(ws: &mut Ws, id: &str) -> Value {
    loop {
        let text = next_text(ws, PATIENCE)
            .await
            .unwrap_or_else(|| panic!("no result for command {id}"));
        let message: Value = serde_json::from_str(&text).unwrap();
        if message["type"] == "result" && message["id"] == id {
            return message;
        }
    }
}

async fn ws_command(ws: &mut Ws, id: &str, mut command: Value) -> Value {
    command["type"] = json!("command");
    command["id"] = json!(id);
    ws.send(command).await;
    ws_result(ws, id).await
}

/// Calls to an auto-answering extension by WebSocket commands.
async fn ws_calls(api: Api, mut ws: Ws, who: String, token: String, from: u32, to: (u32, String)) {
    for round in 0..ROUNDS {
        let id = format!("make-{round}");
        let command = json!({"command": "make_call", "line": from, "to": to.1});
        let result = ws_command(&mut ws, &id, command).await;
        assert_eq!(result["ok"], true, "{who}: {result}");
        let call = result["call"].as_u64().expect("the new call");
        wait_state(&api, &who, &token, call, "connected").await;
        for (action, state) in [("hold", "onhold"), ("unhold", "connected")] {
            let id = format!("{action}-{round}");
            let result = ws_command(&mut ws, &id, json!({"command": action, "call": call})).await;
            assert_eq!(result["ok"], true, "{who}: {result}");
            wait_state(&api, &who, &token, call, state).await;
        }
        let id = format!("drop-{round}");
        let result = ws_command(&mut ws, &id, json!({"command": "drop", "call": call})).await;
        assert_eq!(result["ok"], true, "{who}: {result}");
        wait_idle(&api, &who, &token, &[from, to.0]).await;
    }
}

/// While the calls run: what each tenant principal lists never names the other tenant's
/// lines. Returns the problems and, per tenant, how often a list showed live calls.
async fn watch_lists(
    api: Api,
    views: Vec<(String, String, &'static str, BTreeSet<u32>)>,
    stop: Arc<AtomicBool>,
) -> (Vec<String>, HashMap<&'static str, usize>) {
    let mut problems = Vec::new();
    let mut live = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        for (who, token, tenant, lines) in &views {
            let (_, calls) = api.call(token, Method::GET, "/calls", None).await;
            let calls = calls.as_array().cloned().unwrap_or_default();
            if !calls.is_empty() {
                *live.entry(*tenant).or_default() += 1;
            }
            for call in &calls {
                let line = call["line"].as_u64().unwrap() as u32;
                if !lines.contains(&line) {
                    problems.push(format!("{who} listed a call on line {line}: {call}"));
                }
            }
            let (_, listed) = api.call(token, Method::GET, "/lines", None).await;
            let ids: BTreeSet<u32> = listed
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| l["id"].as_u64().unwrap() as u32)
                .collect();
            if &ids != lines {
                problems.push(format!("{who} listed lines {ids:?} during the calls"));
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (problems, live)
}

/// Runs concurrent calls on both tenants (each tenant's user and administrator, and the
/// global administrator on both instances) until all are over.
async fn run_calls(server: &Server, api: &Api, tenants: [&Tenant; 2]) {
    let mut tasks = Vec::new();
    let mut views = Vec::new();
    for t in tenants {
        let to = |offset: u32| (t.line(offset), t.ext(offset));
        let user = format!("{} user", t.name);
        tasks.push(tokio::spawn(rest_calls(
            api.clone(),
            format!("{user} calling {}", t.ext(REST_TO)),
            t.user.token.clone(),
            t.line(REST_FROM),
            to(REST_TO),
        )));
        tasks.push(tokio::spawn(answered_calls(
            api.clone(),
            format!("{user} calling {}", t.ext(MANUAL_TO)),
            t.user.token.clone(),
            t.line(MANUAL_FROM),
            to(MANUAL_TO),
        )));
        let ws = Ws::connect_as(server, &t.admin.token).await;
        tasks.push(tokio::spawn(ws_calls(
            api.clone(),
            ws,
            format!("{} admin calling {} over WebSocket", t.name, t.ext(WS_TO)),
            t.admin.token.clone(),
            t.line(WS_FROM),
            to(WS_TO),
        )));
        tasks.push(tokio::spawn(rest_calls(
            api.clone(),
            format!("global admin calling {}", t.ext(GLOBAL_TO)),
            server.token.clone(),
            t.line(GLOBAL_FROM),
            to(GLOBAL_TO),
        )));
        for (who, account, _) in t.principals() {
            views.push((who, account.token.clone(), t.name, t.line_ids()));
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch_lists(api.clone(), views, stop.clone()));
    for task in tasks {
        task.await.expect("a call task failed");
    }
    stop.store(true, Ordering::Relaxed);
    let (problems, live) = watcher.await.expect("the list watcher");
    assert!(
        problems.is_empty(),
        "lists during the calls:\n{}",
        problems.join("\n")
    );
    for t in tenants {
        assert!(
            live.get(t.name).copied().unwrap_or(0) > 0,
            "{}'s principals never listed a live call while calls ran",
            t.name
        );
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, calls) = api.call(&server.token, Method::GET, "/calls", None).await;
        if calls.as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(Instant::now() < deadline, "calls are left: {calls}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Lists, errors, metrics, audit

/// What each principal of `own` lists names nothing of `other`.
async fn check_lists(api: &Api, own: &Tenant, other: &Tenant, global_name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let own_lines = own.line_ids();
    let own_users = own.user_names();
    for (who, account, is_admin) in own.principals() {
        let token = &account.token;
        for path in [
            "/lines",
            "/calls",
            "/instances",
            "/users",
            "/teams",
            "/tokens",
            "/assignments",
            "/me",
            "/audit?limit=10000",
            "/tsecimp",
        ] {
            let (status, body) = api.call(token, Method::GET, path, None).await;
            let text = match &body {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            for secret in secrets_in(&text, own, other) {
                problems.push(format!(
                    "{who}: GET {path} ({status}) names {secret}: {text}"
                ));
            }
            let admin_only = path.starts_with("/audit") || path.starts_with("/tsecimp");
            let want = if admin_only && !is_admin { 403 } else { 200 };
            if status != want {
                problems.push(format!(
                    "{who}: GET {path} answered {status}, not {want}: {text}"
                ));
            }
        }
        let get =
            |path: &'static str| async move { api.call(token, Method::GET, path, None).await.1 };
        let items = |v: Value| v.as_array().cloned().unwrap_or_default();
        let lines: BTreeSet<u32> = items(get("/lines").await)
            .iter()
            .map(|l| l["id"].as_u64().unwrap() as u32)
            .collect();
        if lines != own_lines {
            problems.push(format!("{who} lists lines {lines:?}, not {own_lines:?}"));
        }
        let me = get("/me").await;
        let mine: BTreeSet<u32> = items(me["lines"].clone())
            .iter()
            .map(|l| l["line"].as_u64().unwrap() as u32)
            .collect();
        if mine != own_lines {
            problems.push(format!("{who}'s /me has lines {mine:?}, not {own_lines:?}"));
        }
        let instances: Vec<Value> = items(get("/instances").await);
        let names: Vec<&str> = instances
            .iter()
            .filter_map(|i| i["name"].as_str())
            .collect();
        if names != [own.instance] {
            problems.push(format!("{who} lists instances {names:?}"));
        }
        let users: BTreeSet<String> = items(get("/users").await)
            .iter()
            .map(|u| u["name"].as_str().unwrap().to_owned())
            .collect();
        let want: BTreeSet<String> = if is_admin {
            own_users.clone()
        } else {
            [account.name.clone()].into()
        };
        if users != want {
            problems.push(format!("{who} lists users {users:?}, not {want:?}"));
        }
        for team in items(get("/teams").await) {
            if team["tenant"] != own.name {
                problems.push(format!("{who} lists team {team}"));
            }
        }
        for token in items(get("/tokens").await) {
            if !own_users.contains(token["user"].as_str().unwrap()) {
                problems.push(format!("{who} lists token {token}"));
            }
        }
        for assignment in items(get("/assignments").await) {
            let line = assignment["line"].as_u64().unwrap() as u32;
            let user = assignment["user"].as_str().unwrap();
            if !own_lines.contains(&line) || !own_users.contains(user) {
                problems.push(format!("{who} lists assignment {assignment}"));
            }
        }
        if is_admin {
            for entry in items(get("/audit?limit=10000").await) {
                let user = entry["user"].as_str().unwrap();
                let line = entry["line"].as_u64().map(|l| l as u32);
                if entry["tenant"] != own.name
                    || !(own_users.contains(user) || user == global_name)
                    || line.is_some_and(|l| !own_lines.contains(&l))
                {
                    problems.push(format!("{who}'s audit log has {entry}"));
                }
            }
        }
    }
    problems
}

/// Replaces `word` in every string of `value` where it stands alone (not inside a longer
/// number or name).
fn masked(value: &Value, word: &str) -> Value {
    match value {
        Value::String(s) => Value::String(mask(s, word)),
        Value::Array(items) => Value::Array(items.iter().map(|v| masked(v, word)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), masked(v, word)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn mask(text: &str, word: &str) -> String {
    let part = |c: char| c.is_alphanumeric() || c == '-' || c == '_';
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(word) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + word.len()..].chars().next();
        out.push_str(&rest[..at]);
        if before.is_some_and(part) || after.is_some_and(part) {
            out.push_str(word);
        } else {
            out.push_str("<X>");
        }
        rest = &rest[at + word.len()..];
    }
    out.push_str(rest);
    out
}

/// One request template: `{X}` stands for the probed id or name.
struct Probe {
    method: Method,
    path: String,
    body: Option<String>,
    /// The status both must answer, where the API documents one.
    status: Option<u16>,
}

fn probe(method: Method, path: &str, body: Option<String>) -> Probe {
    Probe {
        method,
        path: path.to_owned(),
        body,
        status: None,
    }
}

impl Probe {
    fn answers(self, status: u16) -> Probe {
        Probe {
            status: Some(status),
            ..self
        }
    }
}

/// Sends `probe` with the other tenant's `hidden` and with a `missing` one; the answers must
/// be the same but for the id (so a success, or any other difference, is a leak).
async fn compare(
    api: &Api,
    who: &str,
    token: &str,
    p: &Probe,
    hidden: &str,
    missing: &str,
) -> Option<String> {
    let mut answers = Vec::new();
    for x in [hidden, missing] {
        let path = p.path.replace("{X}", x);
        let body = p.body.as_ref().map(|b| {
            serde_json::from_str::<Value>(&b.replace("{X}", x)).expect("a probe body is JSON")
        });
        let (status, answer) = api.call(token, p.method.clone(), &path, body).await;
        answers.push((status, masked(&answer, x), answer));
    }
    let [
        (status, masked_hidden, raw),
        (missing_status, masked_missing, raw_missing),
    ] = &answers[..]
    else {
        unreachable!()
    };
    let request = format!("{} {}", p.method, p.path);
    if let Some(want) = p.status.filter(|want| want != status) {
        return Some(format!(
            "{who}: {request} with the other tenant's {hidden} answered {status}, not {want}: \
             {raw}"
        ));
    }
    (status != missing_status || masked_hidden != masked_missing).then(|| {
        format!(
            "{who}: {request} tells the other tenant's {hidden} from the missing {missing}: \
             {status} {raw} vs {missing_status} {raw_missing}"
        )
    })
}

/// Another tenant's lines, calls, instance, users, team and tokens answer every principal
/// of `own` exactly as ones that do not exist, over REST and WebSocket commands.
async fn check_errors(
    server: &Server,
    api: &Api,
    own: &Tenant,
    other: &Tenant,
    own_call: u64,
    other_calls: &[u64],
    other_token_id: i64,
) -> Vec<String> {
    const NO_LINE: &str = "4000000";
    const NO_CALL: &str = "9000000000";
    let mut problems = Vec::new();
    let own_ext = own.ext(REST_TO);
    let own_line = own.line(REST_TO);
    let line_probes = [
        probe(Method::GET, "/lines/{X}", None).answers(404),
        probe(
            Method::POST,
            "/lines/{X}/calls",
            Some(format!(r#"{{"to": "{own_ext}"}}"#)),
        )
        .answers(404),
        probe(
            Method::PUT,
            "/lines/{X}/dnd",
            Some(r#"{"enabled": true}"#.into()),
        ),
        probe(
            Method::PUT,
            "/lines/{X}/forwards",
            Some(r#"{"forwards": []}"#.into()),
        ),
        probe(
            Method::POST,
            "/lines/{X}/sim",
            Some(r#"{"action": "off_hook"}"#.into()),
        ),
        probe(
            Method::POST,
            "/lines/{X}/pickup",
            Some(format!(r#"{{"from_line": {own_line}}}"#)),
        ),
        probe(
            Method::POST,
            &format!("/lines/{own_line}/pickup"),
            Some(r#"{"from_line": {X}}"#.into()),
        ),
        probe(
            Method::POST,
            "/lines/{X}/unpark",
            Some(r#"{"from": "701"}"#.into()),
        ),
        probe(Method::DELETE, "/lines/{X}", None),
        probe(
            Method::POST,
            "/lines/purge",
            Some(r#"{"lines": [{X}]}"#.into()),
        ),
        probe(Method::GET, "/calls?line={X}", None),
        probe(Method::GET, "/audit?line={X}", None),
        probe(
            Method::PUT,
            &format!("/users/{}/lines/{{X}}", own.user.name),
            None,
        ),
        probe(
            Method::DELETE,
            &format!("/users/{}/lines/{{X}}", own.user.name),
            None,
        ),
    ];
    let call_probes = [
        probe(Method::GET, "/calls/{X}", None).answers(404),
        probe(Method::POST, "/calls/{X}/drop", None).answers(404),
        probe(Method::POST, "/calls/{X}/answer", None),
        probe(Method::POST, "/calls/{X}/accept", None),
        probe(Method::POST, "/calls/{X}/hold", None),
        probe(Method::POST, "/calls/{X}/unhold", None),
        probe(Method::POST, "/calls/{X}/park", None),
        probe(
            Method::POST,
            "/calls/{X}/redirect",
            Some(format!(r#"{{"to": "{own_ext}"}}"#)),
        ),
        probe(
            Method::POST,
            "/calls/{X}/transfer",
            Some(format!(r#"{{"to": "{own_ext}"}}"#)),
        ),
        probe(
            Method::POST,
            "/calls/{X}/digits",
            Some(r#"{"digits": "1"}"#.into()),
        ),
        probe(
            Method::POST,
            "/calls/{X}/pickup",
            Some(format!(r#"{{"line": {own_line}}}"#)),
        ),
        probe(
            Method::POST,
            &format!("/calls/{own_call}/swap"),
            Some(r#"{"with": {X}}"#.into()),
        ),
    ];
    let instance_probes = [
        probe(Method::POST, "/instances/{X}/test", None).answers(404),
        probe(
            Method::PUT,
            "/instances/{X}/log",
            Some(r#"{"level": "debug"}"#.into()),
        )
        .answers(404),
        probe(
            Method::PUT,
            "/instances/{X}/trace",
            Some(r#"{"enabled": false}"#.into()),
        ),
        probe(
            Method::POST,
            "/instances/{X}/sim",
            Some(r#"{"action": "add_extension", "number": "299"}"#.into()),
        ),
    ];
    let user_probes = [
        probe(Method::GET, "/users/{X}", None),
        probe(
            Method::PATCH,
            "/users/{X}",
            Some(r#"{"friendly_name": "Mallory"}"#.into()),
        ),
        probe(
            Method::PUT,
            "/users/{X}/password",
            Some(r#"{"password": "stolen secret"}"#.into()),
        ),
        probe(
            Method::POST,
            "/tokens",
            Some(r#"{"user": "{X}", "label": "stolen"}"#.into()),
        ),
        probe(Method::GET, "/audit?user={X}", None),
        probe(Method::DELETE, "/users/{X}", None),
    ];
    let team_probes = [
        probe(
            Method::PUT,
            "/teams/{X}",
            Some(r#"{"member_right": "control"}"#.into()),
        ),
        probe(
            Method::PUT,
            &format!("/teams/{{X}}/members/{}", own.user.name),
            None,
        ),
        probe(Method::DELETE, "/teams/{X}", None),
    ];
    let tenant_probes = [probe(Method::GET, "/tsecimp?tenant={X}", None)];
    let token_probes = [probe(Method::DELETE, "/tokens/{X}", None)];

    let other_token = other_token_id.to_string();
    let mut cases: Vec<(&[Probe], String, &str)> = Vec::new();
    for line in other.lines.values() {
        cases.push((&line_probes[..], line.to_string(), NO_LINE));
    }
    for call in other_calls {
        cases.push((&call_probes[..], call.to_string(), NO_CALL));
    }
    cases.push((&instance_probes[..], other.instance.to_owned(), "gamma"));
    cases.push((&user_probes[..], other.user.name.clone(), "nobody-at-all"));
    cases.push((&user_probes[..], other.admin.name.clone(), "nobody-at-all"));
    cases.push((&team_probes[..], other.team.clone(), "no-such-team"));
    cases.push((&tenant_probes[..], other.name.to_owned(), "initech"));
    cases.push((&token_probes[..], other_token, "999999"));

    for (who, account, _) in own.principals() {
        for (probes, hidden, missing) in &cases {
            for p in probes.iter() {
                if let Some(problem) = compare(api, &who, &account.token, p, hidden, missing).await
                {
                    problems.push(problem);
                }
            }
        }

        // The same over WebSocket commands.
        let mut ws = Ws::connect_as(server, &account.token).await;
        let mut ws_cases: Vec<(String, String, &str)> = Vec::new();
        for line in other.lines.values() {
            for template in [
                format!(r#"{{"command": "make_call", "line": {{X}}, "to": "{own_ext}"}}"#),
                r#"{"command": "set_dnd", "line": {X}, "enabled": true}"#.into(),
                r#"{"command": "set_forwards", "line": {X}, "forwards": []}"#.into(),
                r#"{"command": "sim_off_hook", "line": {X}}"#.into(),
                format!(r#"{{"command": "pickup", "line": {own_line}, "from_line": {{X}}}}"#),
            ] {
                ws_cases.push((template, line.to_string(), NO_LINE));
            }
        }
        for call in other_calls {
            for template in [
                r#"{"command": "drop", "call": {X}}"#.to_owned(),
                r#"{"command": "answer", "call": {X}}"#.into(),
                r#"{"command": "hold", "call": {X}}"#.into(),
                format!(r#"{{"command": "redirect", "call": {{X}}, "to": "{own_ext}"}}"#),
                format!(r#"{{"command": "pickup", "line": {own_line}, "call": {{X}}}}"#),
                format!(r#"{{"command": "swap", "call": {own_call}, "with": {{X}}}}"#),
            ] {
                ws_cases.push((template, call.to_string(), NO_CALL));
            }
        }
        ws_cases.push((
            r#"{"command": "sim_add_extension", "instance": "{X}", "number": "299"}"#.into(),
            other.instance.to_owned(),
            "gamma",
        ));
        for (n, (template, hidden, missing)) in ws_cases.iter().enumerate() {
            let mut results = Vec::new();
            for x in [hidden.as_str(), *missing] {
                let command: Value =
                    serde_json::from_str(&template.replace("{X}", x)).expect("a command is JSON");
                let result = ws_command(&mut ws, &format!("probe-{n}"), command).await;
                results.push((masked(&result, x), result));
            }
            let (hidden_result, missing_result) = (&results[0], &results[1]);
            if hidden_result.1["ok"] != false || hidden_result.0 != missing_result.0 {
                problems.push(format!(
                    "{who}: WebSocket {template} tells the other tenant's {hidden} from the \
                     missing {missing}: {} vs {}",
                    hidden_result.1, missing_result.1
                ));
            }
        }
    }
    problems
}

/// `/metrics` is the global administrator's only, and names no tenant, instance or line.
async fn check_metrics(server: &Server, tenants: [&Tenant; 2]) {
    let url = format!("{}/metrics", server.url);
    for t in tenants {
        for (who, account, _) in t.principals() {
            let (status, body) = request_as(&account.token, Method::GET, &url, None).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (403, Some("forbidden")),
                "{who} may not read the metrics: {body}"
            );
        }
    }
    let response = common::http_as(&server.token)
        .get(&url)
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.expect("metrics text");
    assert!(
        text.contains("tapir_commands_total") && text.contains("tapir_events_total"),
        "the metrics count commands and events: {text}"
    );
    // Labels name commands and results only: nothing that belongs to a tenant.
    for sample in text.lines().filter(|l| !l.starts_with('#')) {
        let labels = sample
            .split_once('{')
            .and_then(|(_, rest)| rest.split_once('}'))
            .map_or("", |(labels, _)| labels);
        for label in labels.split(',').filter(|l| !l.is_empty()) {
            let (key, value) = label.split_once('=').unwrap_or((label, ""));
            let value = value.trim_matches('"');
            assert!(
                ["command", "result", "quantile", "le"].contains(&key),
                "a metric has a label {key:?} that could name a tenant's data: {sample}"
            );
            for t in tenants {
                assert!(
                    !Tenant::secrets_of(t).iter().any(|s| s == value)
                        && !t.lines.contains_key(value),
                    "a metric label names {}'s {value:?}: {sample}",
                    t.name
                );
            }
        }
    }
}

/// `own`'s administrator reads `own`'s actions in its audit log: calls of its own, by its own
/// principals and the global administrator, and nothing of `other`.
async fn check_audit(
    api: &Api,
    own: &Tenant,
    other: &Tenant,
    world: &World,
    global_name: &str,
) -> Vec<String> {
    let who = format!("{} admin", own.name);
    let own_calls = world.calls_of(own.name);
    let own_lines = own.line_ids();
    // The log is written in batches: wait until the workload's calls are all in.
    let deadline = Instant::now() + PATIENCE;
    let entries = loop {
        let (status, log) = api
            .call(&own.admin.token, Method::GET, "/audit?limit=10000", None)
            .await;
        assert_eq!(status, 200, "{who}: {log}");
        let entries = log.as_array().cloned().unwrap_or_default();
        let made = |user: &str| {
            entries
                .iter()
                .filter(|e| e["user"] == user && e["action"] == "make_call" && e["result"] == "ok")
                .count()
        };
        let complete = made(&own.user.name) >= 2 * ROUNDS
            && made(&own.admin.name) >= ROUNDS
            && made(global_name) >= ROUNDS;
        if complete {
            break entries;
        }
        assert!(
            Instant::now() < deadline,
            "{who}'s audit log lacks {}'s calls: {log}",
            own.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut problems = Vec::new();
    for entry in &entries {
        let user = entry["user"].as_str().unwrap_or_default();
        let line = entry["line"].as_u64().map(|l| l as u32);
        let call = entry["call"].as_u64();
        if entry["tenant"] != own.name {
            problems.push(format!(
                "{who}'s audit log has another tenant's entry {entry}"
            ));
        }
        if !own.user_names().contains(user) && user != global_name {
            problems.push(format!(
                "{who}'s audit log has an action of {user:?}: {entry}"
            ));
        }
        if line.is_some_and(|l| !own_lines.contains(&l)) {
            problems.push(format!(
                "{who}'s audit log names another tenant's line: {entry}"
            ));
        }
        if call.is_some_and(|c| !own_calls.contains(&c)) {
            let owner = call
                .and_then(|c| world.call_tenant.get(&c))
                .copied()
                .unwrap_or("nobody");
            // A denied command on a call that does not exist records no call, so this tells
            // the other tenant's live calls from missing ones.
            problems.push(format!(
                "{who}'s audit log names call {} of {owner}, where the same command on a \
                 missing call records none: {entry}",
                call.unwrap()
            ));
        }
        if user == other.admin.name || user == other.user.name {
            problems.push(format!(
                "{who}'s audit log has {}'s action {entry}",
                other.name
            ));
        }
    }
    problems
}

/// Fails with the problems found, the first few in full.
fn report(what: &str, problems: &[String]) {
    const SHOWN: usize = 30;
    if problems.is_empty() {
        return;
    }
    let more = problems.len().saturating_sub(SHOWN);
    let tail = if more > 0 {
        format!("\n... and {more} more")
    } else {
        String::new()
    };
    panic!(
        "{what}: {} problems:\n{}{tail}",
        problems.len(),
        problems[..problems.len().min(SHOWN)].join("\n")
    );
}

/// Each tenant's administrator sets do-not-disturb on its marker line: the last event of the
/// tenant that its subscribers wait for.
async fn mark_the_end(api: &Api, tenants: [&Tenant; 2]) {
    for t in tenants {
        let path = format!("/lines/{}/dnd", t.line(MARKER));
        let who = format!("{} admin", t.name);
        let body = Some(json!({"enabled": true}));
        api.ok(&who, &t.admin.token, Method::PUT, &path, body).await;
    }
}

/// The global administrator's stream, checked to be complete: it is the reference.
async fn reference(
    global: tokio::task::JoinHandle<Stream>,
    tenants: [&Tenant; 2],
) -> (Stream, World) {
    let global = global.await.expect("the global subscriber");
    assert!(global.complete, "the global admin missed a marker");
    let seqs: Vec<u64> = global
        .events()
        .iter()
        .map(|(e, _)| e["seq"].as_u64().unwrap())
        .collect();
    let first = global.after + 1;
    assert_eq!(
        seqs,
        (first..first + seqs.len() as u64).collect::<Vec<_>>(),
        "the global admin, who sees everything, gets every sequence number"
    );
    let world = World::learn(&global, tenants);
    (global, world)
}

/// Checks every tenant subscriber's stream against the reference.
async fn check_streams(
    streams: Vec<(&'static str, tokio::task::JoinHandle<Stream>)>,
    tenants: [&Tenant; 2],
    world: &World,
    global: &Stream,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (tenant, stream) in streams {
        let stream = stream.await.expect("a tenant subscriber");
        let (own, other) = if tenant == tenants[0].name {
            (tenants[0], tenants[1])
        } else {
            (tenants[1], tenants[0])
        };
        problems.extend(check_stream(&stream, own, other, world, global));
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_list_error_or_metric_of_one_tenant_reaches_another() {
    let server = Server::with_config(CONFIG);
    let (api, acme, globex, global_name) = setup(&server).await;
    let tenants = [&acme, &globex];

    // 1. Everybody subscribes, then both tenants place calls at the same time.
    let markers = vec![acme.line(MARKER), globex.line(MARKER)];
    let global = subscribe(&server, "global admin".into(), &server.token, None, markers).await;
    let mut streams = Vec::new();
    for t in tenants {
        for (who, account, _) in t.principals() {
            let stream = subscribe(&server, who, &account.token, None, vec![t.line(MARKER)]).await;
            streams.push((t.name, stream));
        }
    }
    run_calls(&server, &api, tenants).await;
    mark_the_end(&api, tenants).await;
    let (global, world) = reference(global, tenants).await;
    for t in tenants {
        assert!(
            world.calls_of(t.name).len() >= 2 * 4 * ROUNDS,
            "{}'s calls all appear in the global stream",
            t.name
        );
    }

    // 2. Each tenant's clients got all of their own tenant's events and nothing else.
    let problems = check_streams(streams, tenants, &world, &global).await;
    report("event streams", &problems);

    // 3. Lists.
    let mut problems = check_lists(&api, &acme, &globex, &global_name).await;
    problems.extend(check_lists(&api, &globex, &acme, &global_name).await);
    report("lists", &problems);

    // 4. Errors, with a call ringing on each tenant.
    let mut live = HashMap::new();
    for t in tenants {
        let path = format!("/lines/{}/calls", t.line(LIVE_FROM));
        let body = Some(json!({"to": t.ext(MANUAL_TO)}));
        let placed = api
            .ok("global admin", &server.token, Method::POST, &path, body)
            .await;
        let call = placed["call"].as_u64().unwrap();
        let deadline = Instant::now() + PATIENCE;
        let ringing = loop {
            let calls = calls_on(&api, &server.token, t.line(MANUAL_TO)).await;
            if let Some(c) = calls.first() {
                break c["id"].as_u64().unwrap();
            }
            assert!(Instant::now() < deadline, "{} never rang", t.ext(MANUAL_TO));
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        live.insert(t.name, vec![call, ringing]);
    }
    let tokens = api
        .ok("global admin", &server.token, Method::GET, "/tokens", None)
        .await;
    let token_of = |user: &str| {
        tokens
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["user"] == user)
            .and_then(|t| t["id"].as_i64())
            .expect("a token")
    };
    let mut problems = check_errors(
        &server,
        &api,
        &acme,
        &globex,
        live[acme.name][0],
        &live[globex.name],
        token_of(&globex.user.name),
    )
    .await;
    problems.extend(
        check_errors(
            &server,
            &api,
            &globex,
            &acme,
            live[globex.name][0],
            &live[acme.name],
            token_of(&acme.user.name),
        )
        .await,
    );
    report("errors", &problems);
    for t in tenants {
        let path = format!("/calls/{}/drop", live[t.name][0]);
        api.ok("global admin", &server.token, Method::POST, &path, None)
            .await;
    }

    // 5. Metrics.
    check_metrics(&server, tenants).await;

    // 6. The audit log.
    let world = World {
        call_tenant: {
            let mut calls = world.call_tenant;
            for t in tenants {
                for call in &live[t.name] {
                    calls.insert(*call, t.name);
                }
            }
            calls
        },
        ..world
    };
    let mut problems = check_audit(&api, &acme, &globex, &world, &global_name).await;
    problems.extend(check_audit(&api, &globex, &acme, &world, &global_name).await);
    report("audit log", &problems);
}

/// A tenant's client that reconnects and resumes with its last sequence number gets the
/// events it missed and the live ones after, all of its own tenant and none of the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_client_that_resumes_gets_its_own_events_and_no_others() {
    let server = Server::with_config(CONFIG);
    let (api, acme, globex, _) = setup(&server).await;
    let tenants = [&acme, &globex];
    let markers = vec![acme.line(MARKER), globex.line(MARKER)];
    let global = subscribe(&server, "global admin".into(), &server.token, None, markers).await;

    // Each principal subscribes and leaves.
    let mut away = Vec::new();
    for t in tenants {
        for (who, account, _) in t.principals() {
            let mut ws = Ws::connect_as(&server, &account.token).await;
            ws.send(json!({"type": "subscribe"})).await;
            let snapshot = next_text(&mut ws, PATIENCE).await.expect("a snapshot");
            let seq = serde_json::from_str::<Value>(&snapshot).unwrap()["seq"]
                .as_u64()
                .unwrap();
            away.push((t, who, account.token.clone(), seq));
        }
    }

    // While they are away, both tenants make calls; then they come back and more calls
    // follow.
    let both = |round: &str| {
        let tasks: Vec<_> = tenants
            .iter()
            .map(|t| {
                tokio::spawn(rest_calls(
                    api.clone(),
                    format!("{} user calling {} {round}", t.name, t.ext(REST_TO)),
                    t.user.token.clone(),
                    t.line(REST_FROM),
                    (t.line(REST_TO), t.ext(REST_TO)),
                ))
            })
            .collect();
        async move {
            for task in tasks {
                task.await.expect("a call task failed");
            }
        }
    };
    both("while the clients are away").await;
    let mut streams = Vec::new();
    for (t, who, token, seq) in away {
        let who = format!("{who}, resuming after seq {seq}");
        let stream = subscribe(&server, who, &token, Some(seq), vec![t.line(MARKER)]).await;
        streams.push((t.name, stream));
    }
    both("after the clients are back").await;
    mark_the_end(&api, tenants).await;

    let (global, world) = reference(global, tenants).await;
    let problems = check_streams(streams, tenants, &world, &global).await;
    report("resumed event streams", &problems);
}
