//! Logging with per-instance levels that change while tapir runs, and the protocol-trace file.
//!
//! Each provider runs inside a span `instance{instance=NAME}`. An instance's log level is an
//! extra directive for that span on top of the server's base filter (`RUST_LOG`, or `info`)
//! for the log on stderr. Protocol traces (the raw PBX traffic that drivers trace at the
//! target `tapir_protocol` while the engine has an instance's trace switched on) go to a
//! daily-rotated file under `<data dir>/trace/` and never to stderr.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use tapir_provider::PROTOCOL_TRACE;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use crate::config::LOG_LEVELS;

/// How many daily protocol-trace files are kept.
const TRACE_FILES_KEPT: usize = 7;

/// Replaces the stderr layer's filter.
type Reload = Box<dyn Fn(EnvFilter) -> Result<(), reload::Error> + Send + Sync>;

/// Changes the log filter at run time.
pub struct LogControl {
    log: Reload,
    base: String,
    levels: Mutex<BTreeMap<String, String>>,
    _trace_writer: WorkerGuard,
}

impl LogControl {
    /// Installs the global subscriber: the log on stderr, protocol traces under `trace_dir`.
    pub fn install(trace_dir: &Path) -> Result<LogControl, String> {
        let base = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
        let log_filter = EnvFilter::try_new(&base).unwrap_or_else(|_| EnvFilter::new("info"));
        let (log_filter, log) = reload::Layer::new(log_filter);
        let log: Reload = Box::new(move |filter| log.reload(filter));
        std::fs::create_dir_all(trace_dir)
            .map_err(|e| format!("cannot create {}: {e}", trace_dir.display()))?;
        let appender = RollingFileAppender::builder()
            .rotation(Rotation::DAILY)
            .filename_prefix("protocol")
            .filename_suffix("log")
            .max_log_files(TRACE_FILES_KEPT)
            .build(trace_dir)
            .map_err(|e| {
                format!(
                    "cannot write protocol traces to {}: {e}",
                    trace_dir.display()
                )
            })?;
        let (writer, guard) = tracing_appender::non_blocking(appender);
        let subscriber = Registry::default()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(log_filter.and(filter_fn(|meta| !is_protocol(meta)))),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(writer)
                    .with_filter(filter_fn(|meta| {
                        // The instance span names the instance on every trace line.
                        is_protocol(meta) || (meta.is_span() && meta.name() == "instance")
                    })),
            );
        // No bridge for the `log` crate: its records (tungstenite logs every frame) would each
        // cost a filter check on the hot path; with no logger they stop at `log`'s own level.
        tracing::subscriber::set_global_default(subscriber)
            .map_err(|e| format!("cannot install logging: {e}"))?;
        Ok(LogControl {
            log,
            base,
            levels: Mutex::default(),
            _trace_writer: guard,
        })
    }

    /// Sets an instance's level; `default` (or `None`) returns it to the base filter.
    pub fn set_level(&self, instance: &str, level: Option<&str>) -> Result<(), String> {
        let level = level.filter(|l| *l != "default");
        if let Some(level) = level
            && !LOG_LEVELS.contains(&level)
        {
            return Err(format!(
                "unknown log level {level:?}; use {} or default",
                LOG_LEVELS.join(", ")
            ));
        }
        let mut levels = match self.levels.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        match level {
            Some(level) => levels.insert(instance.to_owned(), level.to_owned()),
            None => levels.remove(instance),
        };
        let text = log_text(&self.base, &levels);
        let filter = EnvFilter::try_new(&text)
            .map_err(|e| format!("cannot build the log filter {text:?}: {e}"))?;
        (self.log)(filter).map_err(|e| format!("cannot change the log filter: {e}"))
    }
}

/// Raw PBX traffic goes to the trace file only, whatever the log level.
fn is_protocol(meta: &tracing::Metadata<'_>) -> bool {
    meta.target() == PROTOCOL_TRACE
}

fn log_text(base: &str, levels: &BTreeMap<String, String>) -> String {
    let mut text = base.to_owned();
    for (instance, level) in levels {
        text.push_str(&format!(",[instance{{instance={instance}}}]={level}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_levels_become_span_directives() {
        let mut levels = BTreeMap::new();
        levels.insert("office".to_owned(), "debug".to_owned());
        let text = log_text("info", &levels);
        assert_eq!(text, "info,[instance{instance=office}]=debug");
        assert!(EnvFilter::try_new(&text).is_ok());
    }
}
