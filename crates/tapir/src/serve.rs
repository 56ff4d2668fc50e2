//! `tapir serve`: the daemon.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use tapir_api::ApiState;
use tapir_core::{Engine, EngineConfig, InstanceSpec};
use tapir_store::Store;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, DEFAULT_LISTEN};

/// How long start-up waits for every PBX to report its devices before serving anyway.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of `tapir serve` that override the config file.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address for the API and web console [default: 127.0.0.1:5380].
    #[arg(long, env = "TAPIR_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory for tapir's database [default: $XDG_DATA_HOME/tapir or ~/.local/share/tapir].
    #[arg(long, env = "TAPIR_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Config file; without one, tapir runs its embedded default (one simulated PBX).
    #[arg(long, env = "TAPIR_CONFIG")]
    config: Option<PathBuf>,
}

fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("tapir");
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/tapir"),
        None => PathBuf::from("tapir-data"),
    }
}

fn open_store(data_dir: &Path) -> Result<Store> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    Ok(Store::open(&data_dir.join("tapir.db"))?)
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::embedded_default(),
    };
    let listen = args.listen.or(config.server.listen).unwrap_or_else(|| {
        DEFAULT_LISTEN
            .parse()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 5380)))
    });
    let data_dir = args
        .data_dir
        .or(config.server.data_dir.clone())
        .unwrap_or_else(default_data_dir);
    let store = open_store(&data_dir)?;

    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")?;

    let mut instances = Vec::new();
    for instance in &config.instances {
        let provider = instance
            .driver
            .build()
            .with_context(|| format!("instance {:?}", instance.name))?;
        tracing::info!(instance = %instance.name, "{}", instance.driver.describe());
        instances.push(InstanceSpec {
            name: instance.name.clone(),
            provider,
        });
    }
    let mut engine_config = EngineConfig::default();
    if let Some(ms) = config.server.command_timeout_ms {
        engine_config.command_timeout = Duration::from_millis(ms);
    }

    let shutdown = CancellationToken::new();
    let (engine, engine_task) = Engine::start(engine_config, store, instances, shutdown.clone())?;
    // Answer clients only once the lines are in place, unless a PBX takes too long.
    if tokio::time::timeout(SETTLE_TIMEOUT, engine.settled())
        .await
        .is_err()
    {
        tracing::warn!(
            "not every PBX reported its devices within {SETTLE_TIMEOUT:?}; serving anyway"
        );
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    tracing::info!(data_dir = %data_dir.display(), "state kept in {}", data_dir.join("tapir.db").display());
    // Tests and scripts read this line to find an ephemeral port.
    println!("tapir listening on http://{local} (API at http://{local}/api/v1)");

    let state = ApiState {
        engine,
        metrics: Some(metrics),
        shutdown: shutdown.clone(),
    };
    let stop = shutdown.clone();
    let signal = async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        stop.cancel();
    };
    tapir_api::serve(listener, state, signal)
        .await
        .context("the API server failed")?;
    shutdown.cancel();
    engine_task.await.context("the engine task failed")?;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}
