//! A replay peer: a TCP listener on 127.0.0.1 that speaks AMI with the captured messages.
//!
//! Each accepted connection gets the banner, then answers the driver's actions from a
//! library of recorded replies (login, endpoint and channel lists, ...) until the test calls
//! [`Peer::go`]. Then it plays its script: recorded messages are sent in order; a recorded
//! action that the test drives waits until the driver sends an action of the same name, and
//! the recorded replies to it are sent with the driver's ActionID; recorded actions the test
//! does not drive are skipped together with their replies. After the script the connection
//! ends as the script says.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use tapir_driver_ami::codec::{AmiCodec, Frame};
use tapir_driver_ami::message::Message;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;

use super::transcript::{Block, Step, Transcript};

/// What one connection plays after `go`.
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub steps: Vec<Step>,
    /// Recorded ActionIDs of the actions the test drives.
    pub driven: HashSet<String>,
    /// Raw bytes to send after the steps (garbage, an oversized message, a banner).
    pub then_send: Vec<u8>,
    /// Close the connection after the steps instead of serving on.
    pub then_close: bool,
    /// Replies for this connection only, by action name (e.g. the channels after a restart).
    pub replies: HashMap<String, Vec<Block>>,
}

impl Script {
    pub fn new(steps: &[Step], driven: &[&str]) -> Script {
        Script {
            steps: steps.to_vec(),
            driven: driven.iter().map(|s| s.to_string()).collect(),
            ..Script::default()
        }
    }
}

/// Recorded replies by action name.
#[derive(Debug, Clone, Default)]
pub struct Library {
    banner: String,
    login: Vec<Block>,
    replies: HashMap<String, Vec<Block>>,
}

impl Library {
    /// The replies of `basic-call.txt` (login, the status lists before any call) and
    /// `park-and-status.txt` (the other status actions).
    pub fn recorded() -> Library {
        let basic = Transcript::load("basic-call.txt");
        let mut library = Library {
            banner: basic.banner.clone(),
            ..Library::default()
        };
        let login_id = basic.first_action_id("Login").expect("a login");
        library.login = basic.replies(&login_id);
        library.login.extend(basic.first_event("FullyBooted"));
        for action in [
            "PJSIPShowEndpoints",
            "DeviceStateList",
            "ExtensionStateList",
            "CoreShowChannels",
        ] {
            library.use_reply(
                action,
                &basic,
                &basic.first_action_id(action).expect("recorded"),
            );
        }
        let park = Transcript::load("park-and-status.txt");
        for action in ["ParkedCalls", "Status", "QueueStatus", "PJSIPShowContacts"] {
            library.use_reply(
                action,
                &park,
                &park.first_action_id(action).expect("recorded"),
            );
        }
        library
    }

    /// Answers `action` with the replies recorded for the action `id` of `transcript`.
    pub fn use_reply(&mut self, action: &str, transcript: &Transcript, id: &str) {
        self.replies
            .insert(action.to_string(), transcript.replies(id));
    }

    /// Refuses every login as Asterisk does for a wrong secret.
    pub fn refusing_logins(mut self) -> Library {
        self.login.clear();
        self
    }

    /// The bytes that answer `action`, preferring the connection's own `replies`.
    fn answer(&self, action: &Message, replies: &HashMap<String, Vec<Block>>) -> Vec<u8> {
        let id = action.action_id();
        let name = action.get("Action").unwrap_or("");
        if let Some(blocks) = replies.get(name) {
            return blocks.iter().flat_map(|b| b.wire(id)).collect();
        }
        if name.eq_ignore_ascii_case("Login") && self.login.is_empty() {
            let id = id.unwrap_or("");
            return format!(
                "Response: Error\r\nActionID: {id}\r\nMessage: Authentication failed\r\n\r\n"
            )
            .into_bytes();
        }
        if name.eq_ignore_ascii_case("Login") {
            return self.login.iter().flat_map(|b| b.wire(id)).collect();
        }
        if let Some(blocks) = self.replies.get(name) {
            return blocks.iter().flat_map(|b| b.wire(id)).collect();
        }
        // Not in the recordings: Asterisk's own wording for these answers.
        let id = id.unwrap_or("");
        let text = match name {
            "Ping" => format!(
                "Response: Success\r\nActionID: {id}\r\nPing: Pong\r\nTimestamp: 1795407300.000000\r\n\r\n"
            ),
            "CoreSettings" => format!(
                "Response: Success\r\nActionID: {id}\r\nAMIversion: 11.0.0\r\nAsteriskVersion: 22.10.1\r\nSystemName: \r\nCoreMaxCalls: 0\r\n\r\n"
            ),
            "DBGet" | "DBDel" => format!(
                "Response: Error\r\nActionID: {id}\r\nMessage: Database entry not found\r\n\r\n"
            ),
            "Logoff" => format!(
                "Response: Goodbye\r\nActionID: {id}\r\nMessage: Thanks for all the fish.\r\n\r\n"
            ),
            _ => format!(
                "Response: Error\r\nActionID: {id}\r\nMessage: Invalid/unknown command\r\n\r\n"
            ),
        };
        text.into_bytes()
    }
}

/// A running replay peer.
pub struct Peer {
    pub port: u16,
    /// Every action the driver sent, in order.
    pub received: Arc<Mutex<Vec<Message>>>,
    go: Arc<Notify>,
    /// Notified when a connection has played its script.
    pub played: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Peer {
    /// Starts a peer whose n-th connection plays `scripts[n]`; later ones play nothing.
    pub async fn start(library: Library, scripts: Vec<Script>) -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let go = Arc::new(Notify::new());
        let played = Arc::new(Notify::new());
        let shared = Shared {
            library: Arc::new(library),
            received: received.clone(),
            go: go.clone(),
            played: played.clone(),
        };
        let task = tokio::spawn(accept(listener, scripts, shared));
        Peer {
            port,
            received,
            go,
            played,
            task,
        }
    }

    /// Lets the current connection play its script.
    pub fn go(&self) {
        self.go.notify_one();
    }

    /// The names of the actions received so far.
    pub fn actions(&self) -> Vec<Message> {
        self.received.lock().expect("lock").clone()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Shared {
    library: Arc<Library>,
    received: Arc<Mutex<Vec<Message>>>,
    go: Arc<Notify>,
    played: Arc<Notify>,
}

/// Serves one connection at a time: a restarted Asterisk is a new connection.
async fn accept(listener: TcpListener, scripts: Vec<Script>, shared: Shared) {
    let mut scripts = scripts.into_iter();
    while let Ok((stream, _)) = listener.accept().await {
        let script = scripts.next().unwrap_or_default();
        serve(stream, script, &shared).await;
    }
}

async fn serve(stream: TcpStream, script: Script, shared: &Shared) {
    let (read, mut write) = stream.into_split();
    let mut actions = FramedRead::new(read, AmiCodec::default());
    let banner = format!("{}\r\n", shared.library.banner);
    if write.write_all(banner.as_bytes()).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            () = shared.go.notified() => break,
            action = next_action(&mut actions, shared) => match action {
                Some(action) => {
                    if reply(&mut write, &shared.library.answer(&action, &script.replies)).await.is_err() {
                        return;
                    }
                }
                None => return,
            },
        }
    }
    if play(&script, &mut actions, &mut write, shared)
        .await
        .is_err()
    {
        return;
    }
    shared.played.notify_one();
    if !script.then_send.is_empty() && reply(&mut write, &script.then_send).await.is_err() {
        return;
    }
    if script.then_close {
        return;
    }
    while let Some(action) = next_action(&mut actions, shared).await {
        if reply(&mut write, &shared.library.answer(&action, &script.replies))
            .await
            .is_err()
        {
            return;
        }
    }
}

type Actions = FramedRead<tokio::net::tcp::OwnedReadHalf, AmiCodec>;

async fn play(
    script: &Script,
    actions: &mut Actions,
    write: &mut OwnedWriteHalf,
    shared: &Shared,
) -> std::io::Result<()> {
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut skipped: HashSet<String> = HashSet::new();
    for step in &script.steps {
        match step {
            Step::Sent(block) => {
                let recorded = block.action_id().map(str::to_string);
                if recorded.as_ref().is_some_and(|id| skipped.contains(id)) {
                    continue;
                }
                let id = recorded.as_ref().and_then(|id| ids.get(id));
                reply(write, &block.wire(id.map(String::as_str))).await?;
            }
            Step::Received(block) => {
                let recorded = block.action_id().unwrap_or("").to_string();
                if !script.driven.contains(&recorded) {
                    skipped.insert(recorded);
                    continue;
                }
                let name = block.action().unwrap_or("");
                loop {
                    let Some(action) = next_action(actions, shared).await else {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    };
                    if action.get("Action") == Some(name) {
                        ids.insert(recorded, action.action_id().unwrap_or("").to_string());
                        break;
                    }
                    reply(write, &shared.library.answer(&action, &script.replies)).await?;
                }
            }
        }
    }
    Ok(())
}

async fn next_action(actions: &mut Actions, shared: &Shared) -> Option<Message> {
    loop {
        match actions.next().await? {
            Ok(Frame::Message(action)) => {
                shared.received.lock().expect("lock").push(action.clone());
                return Some(action);
            }
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

async fn reply(write: &mut OwnedWriteHalf, bytes: &[u8]) -> std::io::Result<()> {
    write.write_all(bytes).await
}
