//! Logging with per-instance levels that can change while tapir runs.
//!
//! Each provider runs inside a span `instance{instance=NAME}`; an instance's level is an
//! extra filter directive for that span, on top of the server's base filter (`RUST_LOG`, or
//! `info`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LOG_LEVELS;

type Handle = reload::Handle<EnvFilter, tracing_subscriber::Registry>;

/// Changes the log filter at run time.
pub struct LogControl {
    handle: Handle,
    base: String,
    instances: Mutex<BTreeMap<String, String>>,
}

impl LogControl {
    /// Installs the global subscriber (stderr) and returns its control.
    pub fn install() -> LogControl {
        let base = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
        let filter = EnvFilter::try_new(&base).unwrap_or_else(|_| EnvFilter::new("info"));
        let (layer, handle) = reload::Layer::new(filter);
        tracing_subscriber::registry()
            .with(layer)
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .init();
        LogControl {
            handle,
            base,
            instances: Mutex::new(BTreeMap::new()),
        }
    }

    /// Sets an instance's level; `default` (or `None`) returns it to the base filter.
    pub fn set(&self, instance: &str, level: Option<&str>) -> Result<(), String> {
        let level = level.filter(|l| *l != "default");
        if let Some(level) = level
            && !LOG_LEVELS.contains(&level)
        {
            return Err(format!(
                "unknown log level {level:?}; use {} or default",
                LOG_LEVELS.join(", ")
            ));
        }
        let mut instances = match self.instances.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        match level {
            Some(level) => instances.insert(instance.to_owned(), level.to_owned()),
            None => instances.remove(instance),
        };
        let directives = filter_text(&self.base, &instances);
        let filter = EnvFilter::try_new(&directives)
            .map_err(|e| format!("cannot build the log filter {directives:?}: {e}"))?;
        self.handle
            .reload(filter)
            .map_err(|e| format!("cannot change the log filter: {e}"))
    }
}

fn filter_text(base: &str, instances: &BTreeMap<String, String>) -> String {
    let mut text = base.to_owned();
    for (instance, level) in instances {
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
        let text = filter_text("info", &levels);
        assert_eq!(text, "info,[instance{instance=office}]=debug");
        assert!(EnvFilter::try_new(&text).is_ok());
    }
}
