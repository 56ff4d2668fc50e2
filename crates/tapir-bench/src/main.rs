//! `tapir-bench`: the load tool for tapir.
//!
//! It starts a `tapir serve` with one simulated PBX (or connects to one), places calls at a
//! fixed rate through a WebSocket command connection, fans the events out to many WebSocket
//! clients and measures what they receive: throughput, latency, lost or reordered events,
//! and the server's CPU and memory.
//!
//! # Layout
//! - [`server`]: starting, watching and stopping the `tapir` process; `/proc` sampling.
//! - [`load`]: the `run` scenario: the call driver, the subscribed clients, the per-second
//!   reports.
//! - [`memory`]: resident memory and start-up time of idle servers of several sizes.
//! - [`relay`]: the physical-limit baseline, the same stream through a plain TCP relay.
//! - [`plot`]: latency percentiles against call rate and line count, as SVG.
//! - [`stats`]: latency histograms and the report shapes (table and JSON).

mod load;
mod memory;
mod plot;
mod relay;
mod server;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

/// Measures a tapir server under call load.
#[derive(Parser)]
#[command(name = "tapir-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Place calls at a fixed rate and measure event delivery to subscribed clients.
    Run(RunArgs),
    /// Start idle servers of several sizes and report resident memory per line (and, with
    /// `--active-calls`, per connected call).
    Memory(MemoryArgs),
    /// The physical-limit baseline: push the same shape of stream through a plain loopback
    /// TCP relay (no parsing) to K readers and report the same latency percentiles.
    Relay(RelayArgs),
    /// Draw p50/p99 event latency against call rate and against line count from the JSON
    /// reports of several runs (`run --json-out FILE` appends one per line).
    Plot(PlotArgs),
}

#[derive(Args)]
struct RelayArgs {
    /// Reader connections.
    #[arg(long, default_value_t = 10)]
    clients: u32,
    /// Frames per second (a run's calls/s times 11 events per call).
    #[arg(long, default_value_t = 5500.0)]
    messages_per_s: f64,
    /// Bytes per frame (a run reports its mean event message size).
    #[arg(long, default_value_t = 400)]
    msg_bytes: usize,
    /// How long the producer writes.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PlotArgs {
    /// JSON reports of `run`, one document after another (or an array).
    #[arg(long)]
    input: PathBuf,
    /// The SVG to write.
    #[arg(long)]
    output: PathBuf,
}

/// Where the server comes from.
#[derive(Args, Clone)]
struct ServerArgs {
    /// Use this running server (it must have one simulated instance whose second half of
    /// extensions auto-answers) instead of starting one. Only 127.0.0.1 is accepted.
    #[arg(long)]
    server: Option<String>,
    /// The server's process id, for CPU and memory figures with `--server`.
    #[arg(long, requires = "server")]
    pid: Option<u32>,
    /// The token for `--server` (an administrator's sees every line).
    #[arg(long, env = "TAPIR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The `tapir` binary to start; default: the one next to this executable.
    #[arg(long)]
    tapir: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    /// Number of lines (extensions of the simulated PBX); half call, half answer.
    #[arg(long, default_value_t = 1000)]
    lines: u32,
    /// Call attempts per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// How long each call stays connected before the caller drops it.
    #[arg(long, default_value_t = 1000)]
    hold_ms: u64,
    /// How long calls are started.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Number of subscribed WebSocket clients.
    #[arg(long, default_value_t = 10)]
    clients: u32,
    /// Share of the lines each client subscribes to (0 < F <= 1); all lines when absent.
    #[arg(long)]
    share: Option<f64>,
    /// A short fixed run for CI: 200 lines, 20 calls/s, 300 ms hold, 5 s, 5 clients
    /// (4 on all lines, 1 on a quarter of them). Fails on any lost or reordered event.
    #[arg(long)]
    smoke: bool,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,
    /// Also append the JSON report, on one line, to this file (input of `plot`).
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// After the run, push the same stream (clients, events/s, mean message size) through a
    /// plain loopback TCP relay and report the latency ratio to it.
    #[arg(long)]
    baseline: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
struct MemoryArgs {
    /// Comma-separated line counts of idle servers [default: 1000,10000,100000, unless only
    /// --active-calls is given].
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<u32>>,
    /// How long to let each idle server settle before reading its memory.
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
    /// Comma-separated numbers of active (connected, held) calls: for each, a server with
    /// twice as many lines is measured idle and then with that many calls connected.
    #[arg(long, value_delimiter = ',')]
    active_calls: Vec<u32>,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,
    /// The `tapir` binary to start; default: the one next to this executable.
    #[arg(long)]
    tapir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tapir-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("tapir-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the command; `Ok(false)` when the measurement found a failure (lost events).
async fn dispatch(cli: Cli) -> Result<bool> {
    match cli.command {
        Commands::Run(args) => {
            let plan = run_plan(&args)?;
            let tapir = tapir_path(args.server.tapir.as_deref())?;
            load::run(
                plan,
                &args.server,
                &tapir,
                args.json,
                args.baseline,
                args.json_out.as_deref(),
            )
            .await
        }
        Commands::Memory(args) => {
            let sizes = match args.sizes {
                Some(sizes) => sizes,
                None if args.active_calls.is_empty() => vec![1000, 10_000, 100_000],
                None => Vec::new(),
            };
            if sizes.contains(&0) || sizes.iter().any(|&n| n > 1_000_000) {
                bail!("--sizes must be line counts between 1 and 1000000");
            }
            if args.active_calls.iter().any(|&n| n == 0 || n > 100_000) {
                bail!("--active-calls must be between 1 and 100000");
            }
            let tapir = tapir_path(args.tapir.as_deref())?;
            if !sizes.is_empty() {
                memory::run(&sizes, args.settle_ms, &tapir, args.json).await?;
            }
            if !args.active_calls.is_empty() {
                memory::active(&args.active_calls, args.settle_ms, &tapir, args.json).await?;
            }
            Ok(true)
        }
        Commands::Relay(args) => {
            if args.clients == 0 || args.clients > 10_000 {
                bail!("--clients must be between 1 and 10000");
            }
            if args.duration_s == 0 || args.duration_s > 3600 {
                bail!("--duration-s must be between 1 and 3600");
            }
            let report = relay::measure(relay::Shape {
                clients: args.clients,
                messages_per_s: args.messages_per_s,
                msg_bytes: args.msg_bytes,
                duration_s: args.duration_s,
            })
            .await?;
            relay::print(&report, args.json)?;
            Ok(report.passed)
        }
        Commands::Plot(args) => {
            plot::draw(&args.input, &args.output)?;
            Ok(true)
        }
    }
}

/// The checked parameters of a `run`.
fn run_plan(args: &RunArgs) -> Result<load::Plan> {
    let mut plan = load::Plan {
        lines: args.lines,
        rate: args.rate,
        hold_ms: args.hold_ms,
        duration_s: args.duration_s,
        clients: args.clients,
        share: args.share,
        share_clients: 0,
    };
    if args.smoke {
        plan = load::Plan {
            lines: 200,
            rate: 20.0,
            hold_ms: 300,
            duration_s: 5,
            clients: 5,
            share: Some(0.25),
            share_clients: 1,
        };
    } else if args.share.is_some() {
        plan.share_clients = args.clients;
    }
    if plan.lines < 2 {
        bail!("--lines must be at least 2 (a caller and a callee)");
    }
    if !(plan.rate > 0.0 && plan.rate <= 100_000.0) {
        bail!("--rate must be above 0 and at most 100000 calls per second");
    }
    if plan.duration_s == 0 || plan.duration_s > 3600 {
        bail!("--duration-s must be between 1 and 3600");
    }
    if plan.hold_ms > 600_000 {
        bail!("--hold-ms must be at most 600000");
    }
    if plan.clients > 10_000 {
        bail!("--clients must be at most 10000");
    }
    if let Some(share) = plan.share
        && !(share > 0.0 && share <= 1.0)
    {
        bail!("--share must be above 0 and at most 1");
    }
    Ok(plan)
}

/// The `tapir` binary: the one given, or the one built next to this executable.
fn tapir_path(given: Option<&std::path::Path>) -> Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    let me = std::env::current_exe().context("cannot find this executable's path")?;
    let dir = me
        .parent()
        .context("this executable's path has no directory")?;
    let candidate = dir.join("tapir");
    if candidate.is_file() {
        return Ok(candidate);
    }
    // `cargo bench`/`cargo test` put executables one level down, in `deps/`.
    if let Some(up) = dir.parent().map(|d| d.join("tapir"))
        && up.is_file()
    {
        return Ok(up);
    }
    bail!(
        "no tapir binary next to {}; build it (`cargo build -p tapir`) or pass --tapir PATH",
        me.display()
    )
}
