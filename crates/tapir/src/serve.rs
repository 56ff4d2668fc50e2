//! `tapir serve`: the daemon, and the administration that needs its config.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tapir_access::Accounts;
use tapir_api::{Admin, AdminError, AdminFuture, ApiState};
use tapir_core::{Engine, EngineConfig, EngineHandle, InstanceChange, InstanceSpec};
use tapir_store::Store;
use tapir_wire::{InstanceTestDto, ReloadDto};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, DEFAULT_LISTEN, InstanceConfig};
use crate::logging::LogControl;

/// How long start-up waits for every PBX to report its devices before serving anyway.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of `tapir serve` that override the config file.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address for the API [default: 127.0.0.1:5380].
    #[arg(long, env = "TAPIR_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory for tapir's database [default: $XDG_DATA_HOME/tapir or ~/.local/share/tapir].
    #[arg(long, env = "TAPIR_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Config file; without one, tapir runs its embedded default (one simulated PBX).
    /// `tapir reload` or SIGHUP applies changes to it without a restart.
    #[arg(long, env = "TAPIR_CONFIG")]
    config: Option<PathBuf>,
}

pub fn default_data_dir() -> PathBuf {
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

/// Where the server leaves its administrator token for the CLI on the same machine.
pub const LOCAL_TOKEN_FILE: &str = "cli-token";

/// Issues a fresh CLI token and writes it readable by this OS user only; the old one stops
/// working.
async fn write_local_token(accounts: &Accounts, data_dir: &Path) -> Result<()> {
    let token = accounts.issue_local_token().await?;
    let path = data_dir.join(LOCAL_TOKEN_FILE);
    crate::credentials::write_secret(&path, &token.expose())?;
    tracing::info!(path = %path.display(), "administrator token for the CLI written");
    Ok(())
}

fn spec(instance: &InstanceConfig) -> Result<InstanceSpec> {
    let provider = instance
        .driver
        .build()
        .with_context(|| format!("instance {:?}", instance.name))?;
    let presentation = instance
        .presentation()
        .with_context(|| format!("instance {:?}", instance.name))?;
    Ok(InstanceSpec {
        name: instance.name.clone(),
        provider,
        presentation,
    })
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
    let accounts = Accounts::start(open_store(&data_dir)?, config.policies());
    let logs = LogControl::install(&data_dir.join("trace")).map_err(anyhow::Error::msg)?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")?;

    let mut instances = Vec::new();
    for instance in &config.instances {
        tracing::info!(instance = %instance.name, "{}", instance.driver.describe());
        logs.set_level(&instance.name, instance.log_level.as_deref())
            .map_err(anyhow::Error::msg)?;
        instances.push(spec(instance)?);
    }
    let mut engine_config = EngineConfig::default();
    if let Some(ms) = config.server.command_timeout_ms {
        engine_config.command_timeout = Duration::from_millis(ms);
    }
    if let Some(events) = config.server.resume_buffer {
        engine_config.resume_buffer = events;
    }
    if let Some(events) = config.server.subscriber_backlog {
        engine_config.subscriber_backlog = events;
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
    let tls = match &config.server.tls {
        Some(tls) => Some(tapir_tls::server_tls::load_server_config(
            &tls.cert, &tls.key,
        )?),
        None => None,
    };
    write_local_token(&accounts, &data_dir).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    tracing::info!(data_dir = %data_dir.display(), "state kept in {}", data_dir.join("tapir.db").display());
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Tests and scripts read this line to find an ephemeral port.
    println!("tapir listening on {scheme}://{local} (API at {scheme}://{local}/api/v1)");

    let admin = Arc::new(ServerAdmin {
        config_path: args.config.clone(),
        config: Mutex::new(config),
        engine: engine.clone(),
        accounts: accounts.clone(),
        logs,
    });
    let hangups = reload_on_sighup(admin.clone(), shutdown.clone());
    let state = ApiState::new(
        engine,
        accounts,
        Some(metrics),
        shutdown.clone(),
        Some(admin),
    );
    let stop = shutdown.clone();
    let signal = async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        stop.cancel();
    };
    match tls {
        Some(tls) => {
            tapir_tls::server_tls::serve_tls(listener, tls, tapir_api::router(state), signal).await
        }
        None => tapir_api::serve(listener, state, signal).await,
    }
    .context("the API server failed")?;
    shutdown.cancel();
    hangups.abort();
    engine_task.await.context("the engine task failed")?;
    Ok(())
}

/// The administration that needs the config file: reload, connection tests, log levels.
struct ServerAdmin {
    config_path: Option<PathBuf>,
    /// The config in force; the lock also keeps two reloads from interleaving.
    config: Mutex<Config>,
    engine: EngineHandle,
    accounts: Arc<Accounts>,
    logs: LogControl,
}

impl ServerAdmin {
    async fn reload_now(&self) -> Result<ReloadDto, AdminError> {
        let Some(path) = &self.config_path else {
            return Err(AdminError::Invalid(
                "tapir runs on its embedded default; start it with --config to reload".into(),
            ));
        };
        let new = Config::load(path).map_err(|e| AdminError::Invalid(e.to_string()))?;
        let mut current = self.config.lock().await;
        let mut report = ReloadDto::default();
        let mut changes = Vec::new();
        for old in &current.instances {
            if !new.instances.iter().any(|n| n.name == old.name) {
                report.removed.push(old.name.clone());
                changes.push(InstanceChange::Remove(old.name.clone()));
            }
        }
        for instance in &new.instances {
            let spec = || spec(instance).map_err(|e| AdminError::Invalid(format!("{e:#}")));
            match current.instances.iter().find(|o| o.name == instance.name) {
                None => {
                    report.added.push(instance.name.clone());
                    changes.push(InstanceChange::Add(spec()?));
                }
                Some(old) if old.restart_needed(instance) => {
                    report.restarted.push(instance.name.clone());
                    changes.push(InstanceChange::Replace(spec()?));
                }
                Some(_) => report.unchanged.push(instance.name.clone()),
            }
        }
        // Until the engine has switched, both old and new instances need their policies.
        let mut both = current.policies();
        both.extend(new.policies());
        self.accounts.set_policies(both);
        for instance in &new.instances {
            self.logs
                .set_level(&instance.name, instance.log_level.as_deref())
                .map_err(AdminError::Invalid)?;
        }
        self.engine
            .reconfigure(changes)
            .await
            .map_err(|e| AdminError::Invalid(e.to_string()))?;
        // Answer once the new and restarted instances have their lines, as at start-up.
        if tokio::time::timeout(SETTLE_TIMEOUT, self.engine.settled())
            .await
            .is_err()
        {
            tracing::warn!("not every PBX reported its devices within {SETTLE_TIMEOUT:?}");
        }
        if new.server.listen != current.server.listen
            || new.server.data_dir != current.server.data_dir
        {
            tracing::warn!("changes to [server] listen and data_dir take effect at the next start");
        }
        self.accounts.set_policies(new.policies());
        *current = new;
        tracing::info!(added = ?report.added, removed = ?report.removed,
            restarted = ?report.restarted, "config reloaded");
        Ok(report)
    }
}

impl ServerAdmin {
    /// Refuses names that are not configured (when a reload holds the config, the name is
    /// let through: the filter then names an instance that may appear).
    fn check_instance(&self, instance: &str) -> Result<(), AdminError> {
        let known = self
            .config
            .try_lock()
            .map(|c| c.instances.iter().any(|i| i.name == instance))
            .unwrap_or(true);
        if known {
            Ok(())
        } else {
            Err(AdminError::NotFound(format!(
                "no instance named {instance:?}"
            )))
        }
    }
}

impl Admin for ServerAdmin {
    fn reload(self: Arc<Self>) -> AdminFuture<Result<ReloadDto, AdminError>> {
        Box::pin(async move { self.reload_now().await })
    }

    fn test_instance(
        self: Arc<Self>,
        name: String,
    ) -> AdminFuture<Result<InstanceTestDto, AdminError>> {
        let this = self;
        Box::pin(async move {
            let instance = {
                let config = this.config.lock().await;
                config.instances.iter().find(|i| i.name == name).cloned()
            };
            let instance = instance
                .ok_or_else(|| AdminError::NotFound(format!("no instance named {name:?}")))?;
            let probe = instance
                .driver
                .build()
                .map_err(|e| AdminError::Invalid(e.to_string()))?;
            Ok(match probe.test_connection().await {
                Ok(report) => InstanceTestDto {
                    instance: name,
                    ok: true,
                    summary: report.summary,
                    devices: Some(report.devices),
                },
                Err(error) => InstanceTestDto {
                    instance: name,
                    ok: false,
                    summary: error.to_string(),
                    devices: None,
                },
            })
        })
    }

    fn set_log_level(&self, instance: String, level: String) -> Result<(), AdminError> {
        self.check_instance(&instance)?;
        self.logs
            .set_level(&instance, Some(&level))
            .map_err(AdminError::Invalid)
    }

    fn set_trace(
        self: Arc<Self>,
        instance: String,
        enabled: bool,
    ) -> AdminFuture<Result<(), AdminError>> {
        Box::pin(async move {
            self.engine
                .set_trace(instance, enabled)
                .await
                .map_err(|e| AdminError::NotFound(e.to_string()))
        })
    }
}

/// Reloads the config on every SIGHUP until shutdown.
fn reload_on_sighup(
    admin: Arc<ServerAdmin>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hangups) = signal(SignalKind::hangup()) else {
                tracing::warn!("cannot listen for SIGHUP; use `tapir reload`");
                return;
            };
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    Some(()) = hangups.recv() => {
                        if let Err(error) = admin.clone().reload().await {
                            tracing::error!(%error, "config reload refused; the running config stays");
                        }
                    }
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = admin;
            shutdown.cancelled().await;
        }
    })
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
