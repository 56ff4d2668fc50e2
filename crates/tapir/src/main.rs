//! The `tapir` binary: the server (`tapir serve`) and the command-line client.
//!
//! # Layout
//! - `config`: the config file, and the one place that names drivers.
//! - `serve`: the daemon: store, engine, providers and API, reload and connection tests.
//! - `logging`: per-instance log levels that change at run time.
//! - `client`: REST calls to a running server.
//! - `credentials`: where the CLI finds its token.
//! - `accounts_cli`: login, users, tokens, teams, assignments, tsecimp, audit, TLS.
//! - `watch`: the live event stream.
//! - `output`: tables and JSON lines.

mod accounts_cli;
mod client;
mod config;
mod credentials;
mod logging;
mod output;
mod serve;
mod watch;

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use tapir_wire::{CommandResultDto, ForwardDto, PbxSimActionDto, PickupOntoLineBody, SimActionDto};

use crate::client::{CallAction, Client, DialAction};

/// tapir: a telephony server that turns PBX extensions into TAPI-style lines and calls.
#[derive(Debug, Parser)]
#[command(name = "tapir", version, propagate_version = true)]
struct Cli {
    /// The tapir server to talk to.
    #[arg(long, global = true, env = "TAPIR_SERVER", default_value = client::DEFAULT_SERVER)]
    server: String,
    /// Print JSON (one document per line) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// The bearer token to authenticate with [default: the token of `tapir login`, else the
    /// administrator token a server on this machine leaves in its data directory].
    #[arg(long, global = true, env = "TAPIR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Also trust the certificates in this PEM file (a server's self-signed certificate).
    #[arg(long, global = true, env = "TAPIR_CA_FILE")]
    ca_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the server (with no config: one simulated PBX with 20 extensions).
    Serve(serve::ServeArgs),
    /// Check a config file and explain what is wrong with it.
    CheckConfig { file: PathBuf },
    /// List the PBX instances and their link state.
    Instances,
    /// List the lines (`tapir lines purge` forgets defunct ones).
    Lines {
        #[command(subcommand)]
        action: Option<LinesCmd>,
    },
    /// Re-read the server's config file and apply it without a restart.
    Reload,
    /// Test or tune one instance.
    #[command(subcommand)]
    Instance(InstanceCmd),
    /// List the calls.
    Calls {
        /// Only calls on this line.
        #[arg(long)]
        line: Option<String>,
    },
    /// Place a call from LINE (an extension, instance/extension or #id) to NUMBER.
    Dial { line: String, number: String },
    /// Claim a ringing call without answering it yet (TAPI's lineAccept).
    Accept { call: u64 },
    /// Answer a ringing call.
    Answer { call: u64 },
    /// Drop (hang up) a call; on a ringing call this rejects it.
    Drop { call: u64 },
    /// Put a call on hold.
    Hold { call: u64 },
    /// Take a call off hold.
    Unhold { call: u64 },
    /// Swap the active call and a held call on the same line.
    Swap {
        call: u64,
        /// The other call, when the line has more than one.
        #[arg(long)]
        with: Option<u64>,
    },
    /// Blind-transfer a call to NUMBER.
    Transfer { call: u64, number: String },
    /// Hold a call for transfer and dial NUMBER for a consultation.
    Consult { call: u64, number: String },
    /// Complete a consultation transfer (give either call).
    CompleteTransfer { call: u64 },
    /// Join a consultation into a three-party conference (give either call).
    Conference { call: u64 },
    /// Send DTMF DIGITS (0-9 * # A-D) on a connected call.
    Digits { call: u64, digits: String },
    /// Deflect a ringing call to NUMBER.
    Redirect { call: u64, number: String },
    /// Pick up onto LINE a call that rings elsewhere.
    Pickup {
        line: String,
        /// The ringing call.
        #[arg(long, conflicts_with = "from", required_unless_present = "from")]
        call: Option<u64>,
        /// The line where it rings.
        #[arg(long)]
        from: Option<String>,
    },
    /// Park a connected call: at PLACE, or where the PBX chooses (it prints where).
    Park {
        call: u64,
        /// The park place (directed park).
        #[arg(long)]
        at: Option<String>,
    },
    /// Take the call parked at PLACE onto LINE.
    Unpark { line: String, place: String },
    /// Set or clear call forwarding of LINE.
    Forward {
        line: String,
        /// Forward every call to this number.
        #[arg(long)]
        always: Option<String>,
        /// Forward calls when the line is busy.
        #[arg(long)]
        busy: Option<String>,
        /// Forward calls that are not answered.
        #[arg(long)]
        no_answer: Option<String>,
        /// Clear all forwarding.
        #[arg(long, conflicts_with_all = ["always", "busy", "no_answer"])]
        off: bool,
    },
    /// Turn do-not-disturb of LINE on or off.
    Dnd { line: String, state: OnOff },
    /// Print events live, in order; resumes without a gap after a lost connection.
    Watch {
        /// Only events of this line (repeatable).
        #[arg(long)]
        line: Vec<String>,
        /// Start after this event sequence number (replays what was missed).
        #[arg(long)]
        since: Option<u64>,
        /// Stop after this many events (0: print the current snapshot and stop).
        #[arg(long)]
        count: Option<u64>,
    },
    /// Play the person at a phone, or the world outside (simulated PBX only).
    #[command(subcommand)]
    Sim(SimCmd),
    #[command(flatten)]
    Account(accounts_cli::AccountCmd),
    /// TLS helpers.
    #[command(subcommand)]
    Tls(accounts_cli::TlsCmd),
}

#[derive(Debug, Subcommand)]
enum LinesCmd {
    /// Forget defunct lines (lines whose device left the PBX); their ids are never reused.
    Purge {
        /// The lines to forget (extension, instance/extension or #id).
        lines: Vec<String>,
        /// Forget every defunct line.
        #[arg(long, conflicts_with = "lines", required_unless_present = "lines")]
        all_defunct: bool,
    },
}

#[derive(Debug, Subcommand)]
enum InstanceCmd {
    /// Connect to the instance's PBX with its settings and report what was found, or why
    /// it failed, without disturbing the running instance.
    Test { name: String },
    /// Set the instance's log level: error, warn, info, debug, trace or default.
    Log { name: String, level: String },
    /// Write the instance's raw PBX traffic to `<data dir>/trace/protocol.*.log` (passwords
    /// redacted), or stop.
    Trace { name: String, state: OnOff },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Debug, Subcommand)]
enum SimCmd {
    /// Pick up the handset: answers a ringing call, or gets dial tone.
    #[command(alias = "offhook")]
    Answer { line: String },
    /// Put the handset down.
    #[command(alias = "onhook")]
    Hangup { line: String },
    /// Dial digits on the handset.
    Dial { line: String, digits: String },
    /// Press the hold key.
    Hold { line: String },
    /// An outside caller calls LINE.
    Call {
        line: String,
        /// The caller's number.
        #[arg(long)]
        from: String,
        /// The caller's name.
        #[arg(long)]
        name: Option<String>,
    },
    /// The far end of the call on LINE hangs up.
    RemoteHangup { line: String },
    /// A new extension appears on the simulated PBX INSTANCE.
    AddExtension {
        instance: String,
        number: String,
        /// The name the PBX gives its user.
        #[arg(long)]
        name: Option<String>,
    },
    /// An extension disappears from the simulated PBX INSTANCE.
    RemoveExtension { instance: String, number: String },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let broken_pipe = error
                .downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe);
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Serve(args) => serve::run(args).await,
        Cmd::CheckConfig { file } => check_config(&file),
        Cmd::Tls(command) => accounts_cli::tls(command),
        command => {
            let data_dir = std::env::var_os("TAPIR_DATA_DIR").map(PathBuf::from);
            let token = credentials::find_token(cli.token, data_dir.as_deref());
            let client = Client::new(&cli.server, token, cli.ca_file.as_deref())?;
            match command {
                Cmd::Account(command) => accounts_cli::run(&client, command, cli.json).await,
                command => client_command(&client, command, cli.json).await,
            }
        }
    }
}

fn check_config(file: &std::path::Path) -> Result<()> {
    let config = config::Config::load(file)?;
    output::line(&format!(
        "{}: OK, {} instance(s)",
        file.display(),
        config.instances.len()
    ))?;
    for instance in &config.instances {
        output::line(&format!(
            "  {} ({}): {}",
            instance.name,
            instance.driver.kind(),
            instance.driver.describe()
        ))?;
    }
    Ok(())
}

async fn client_command(client: &Client, command: Cmd, json: bool) -> Result<()> {
    let done = |what: &str, result: CommandResultDto| -> Result<()> {
        if json {
            output::json(&result)?
        } else {
            output::result(what, &result)?
        }
        Ok(())
    };
    match command {
        Cmd::Instances => {
            let instances = client.instances().await?;
            if json {
                output::json(&instances)?
            } else {
                output::instances(&instances)?
            }
        }
        Cmd::Lines {
            action: Some(LinesCmd::Purge { lines, all_defunct }),
        } => {
            let mut ids = Vec::new();
            for name in &lines {
                ids.push(client.resolve_line(name).await?);
            }
            debug_assert!(all_defunct || !ids.is_empty());
            let purged = client.purge(ids).await?;
            if json {
                output::json(&purged)?;
            } else {
                let ids: Vec<String> = purged.purged.iter().map(|id| format!("#{id}")).collect();
                output::line(&format!("purged {} line(s) {}", ids.len(), ids.join(" ")))?;
            }
        }
        Cmd::Reload => {
            let report = client.reload().await?;
            if json {
                output::json(&report)?
            } else {
                output::reload(&report)?
            }
        }
        Cmd::Instance(InstanceCmd::Test { name }) => {
            let report = client.test_instance(&name).await?;
            if json {
                output::json(&report)?;
            } else {
                let verdict = if report.ok { "OK" } else { "FAILED" };
                output::line(&format!(
                    "{}: {verdict}: {}",
                    report.instance, report.summary
                ))?;
            }
            if !report.ok {
                anyhow::bail!("the connection test of {name} failed");
            }
        }
        Cmd::Instance(InstanceCmd::Trace { name, state }) => {
            let enabled = matches!(state, OnOff::On);
            client.set_trace(&name, enabled).await?;
            let word = if enabled { "on" } else { "off" };
            output::line(&format!("{name}: protocol trace {word}"))?;
        }
        Cmd::Instance(InstanceCmd::Log { name, level }) => {
            client.set_log_level(&name, &level).await?;
            output::line(&format!("{name}: log level {level}"))?;
        }
        Cmd::Lines { action: None } => {
            let lines = client.lines().await?;
            if json {
                output::json(&lines)?;
            } else {
                let calls = client.calls(None).await?;
                output::lines(&lines, &calls)?;
            }
        }
        Cmd::Calls { line } => {
            let line = match line {
                Some(name) => Some(client.resolve_line(&name).await?),
                None => None,
            };
            let calls = client.calls(line).await?;
            if json {
                output::json(&calls)?;
            } else {
                output::calls(&calls, &client.lines().await?)?;
            }
        }
        Cmd::Dial { line, number } => {
            let line = client.resolve_line(&line).await?;
            done("dialling", client.make_call(line, &number).await?)?;
        }
        Cmd::Accept { call } => done(
            "accepted",
            client.call_action(call, CallAction::Accept).await?,
        )?,
        Cmd::Answer { call } => done(
            "answered",
            client.call_action(call, CallAction::Answer).await?,
        )?,
        Cmd::Drop { call } => done("dropped", client.call_action(call, CallAction::Drop).await?)?,
        Cmd::Hold { call } => done("held", client.call_action(call, CallAction::Hold).await?)?,
        Cmd::Unhold { call } => done(
            "unheld",
            client.call_action(call, CallAction::Unhold).await?,
        )?,
        Cmd::CompleteTransfer { call } => done(
            "transferred",
            client
                .call_action(call, CallAction::CompleteTransfer)
                .await?,
        )?,
        Cmd::Conference { call } => done(
            "conference",
            client.call_action(call, CallAction::Conference).await?,
        )?,
        Cmd::Swap { call, with } => done("swapped", client.swap(call, with).await?)?,
        Cmd::Transfer { call, number } => done(
            "transferred",
            client
                .dial_action(call, DialAction::Transfer, &number)
                .await?,
        )?,
        Cmd::Consult { call, number } => done(
            "consulting",
            client
                .dial_action(call, DialAction::Consult, &number)
                .await?,
        )?,
        Cmd::Digits { call, digits } => done("digits sent", client.digits(call, &digits).await?)?,
        Cmd::Redirect { call, number } => done(
            "redirected",
            client
                .dial_action(call, DialAction::Redirect, &number)
                .await?,
        )?,
        Cmd::Pickup { line, call, from } => {
            let line = client.resolve_line(&line).await?;
            let from_line = match from {
                Some(name) => Some(client.resolve_line(&name).await?),
                None => None,
            };
            done(
                "picked up",
                client
                    .pickup(line, PickupOntoLineBody { call, from_line })
                    .await?,
            )?;
        }
        Cmd::Park { call, at } => done("parked", client.park(call, at).await?)?,
        Cmd::Unpark { line, place } => {
            let line = client.resolve_line(&line).await?;
            done("unparked", client.unpark(line, &place).await?)?;
        }
        Cmd::Forward {
            line,
            always,
            busy,
            no_answer,
            off,
        } => {
            let line = client.resolve_line(&line).await?;
            let forwards: Vec<ForwardDto> = [
                ("unconditional", always),
                ("busy", busy),
                ("no_answer", no_answer),
            ]
            .into_iter()
            .filter_map(|(mode, to)| {
                to.map(|destination| ForwardDto {
                    mode: mode.into(),
                    destination,
                })
            })
            .collect();
            if forwards.is_empty() && !off {
                anyhow::bail!("give --always, --busy or --no-answer with a number, or --off");
            }
            done("forwarding set", client.set_forwards(line, forwards).await?)?;
        }
        Cmd::Dnd { line, state } => {
            let line = client.resolve_line(&line).await?;
            done(
                "do-not-disturb set",
                client.set_dnd(line, matches!(state, OnOff::On)).await?,
            )?;
        }
        Cmd::Watch { line, since, count } => {
            let mut lines = Vec::new();
            for name in &line {
                lines.push(client.resolve_line(name).await?);
            }
            let options = watch::WatchOptions {
                lines: (!lines.is_empty()).then_some(lines),
                since,
                json,
                count,
            };
            let connection = watch::Connection {
                url: client.ws_url(),
                token: client.token().map(str::to_owned),
                tls: client.tls(),
            };
            watch::run(&connection, options).await?;
        }
        Cmd::Sim(SimCmd::AddExtension {
            instance,
            number,
            name,
        }) => {
            let action = PbxSimActionDto::AddExtension { number, name };
            done(
                "extension added",
                client.simulate_pbx(&instance, &action).await?,
            )?;
        }
        Cmd::Sim(SimCmd::RemoveExtension { instance, number }) => {
            let action = PbxSimActionDto::RemoveExtension { number };
            done(
                "extension removed",
                client.simulate_pbx(&instance, &action).await?,
            )?;
        }
        Cmd::Sim(sim) => {
            let (line, action, what) = match sim {
                SimCmd::Answer { line } => (line, SimActionDto::OffHook {}, "handset lifted"),
                SimCmd::Hangup { line } => (line, SimActionDto::OnHook {}, "handset down"),
                SimCmd::Dial { line, digits } => (line, SimActionDto::Dial { digits }, "dialled"),
                SimCmd::Hold { line } => (line, SimActionDto::Hold {}, "hold pressed"),
                SimCmd::Call { line, from, name } => (
                    line,
                    SimActionDto::Incoming { from, name },
                    "outside call placed",
                ),
                SimCmd::RemoteHangup { line } => {
                    (line, SimActionDto::RemoteHangup {}, "far end hung up")
                }
                SimCmd::AddExtension { .. } | SimCmd::RemoveExtension { .. } => {
                    anyhow::bail!("handled above")
                }
            };
            let line = client.resolve_line(&line).await?;
            done(what, client.simulate(line, &action).await?)?;
        }
        Cmd::Serve(_) | Cmd::CheckConfig { .. } | Cmd::Account(_) | Cmd::Tls(_) => {
            anyhow::bail!("serve and check-config do not talk to a server")
        }
    }
    Ok(())
}
