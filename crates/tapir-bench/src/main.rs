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
//! - [`stats`]: latency histograms and the report shapes (table and JSON).

mod load;
mod memory;
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
    /// Start idle servers of several sizes and report resident memory per line.
    Memory(MemoryArgs),
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
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Args)]
struct MemoryArgs {
    /// Comma-separated line counts.
    #[arg(long, default_value = "1000,10000,100000", value_delimiter = ',')]
    sizes: Vec<u32>,
    /// How long to let each idle server settle before reading its memory.
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
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
            load::run(plan, &args.server, &tapir, args.json).await
        }
        Commands::Memory(args) => {
            if args.sizes.is_empty() {
                bail!("--sizes needs at least one line count");
            }
            let tapir = tapir_path(args.tapir.as_deref())?;
            memory::run(&args.sizes, args.settle_ms, &tapir, args.json).await?;
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
