//! [`SipProvider`]: the SIP provider as tapir's core sees it, and its connection test.

use std::time::Instant;

use tapir_model::Capabilities;
use tapir_provider::{
    BoxFuture, PbxIdentity, Provider, ProviderContext, ProviderError, TestReport,
};

use crate::config::SipConfig;
use crate::session;
use crate::stack::Stack;

/// Lines on a SIP registrar with RFC 4235 dialog events (Kamailio).
#[derive(Debug, Clone)]
pub struct SipProvider {
    config: SipConfig,
}

impl SipProvider {
    /// A provider for `config`, which is checked first.
    pub fn new(config: SipConfig) -> Result<SipProvider, ProviderError> {
        config.validate()?;
        Ok(SipProvider { config })
    }
}

impl Provider for SipProvider {
    fn kind(&self) -> &'static str {
        "sip"
    }

    /// Make call (3PCC) always; drop only with JSON-RPC; answer and hold (with unhold) only
    /// when every line's phone type takes remote control. Capabilities belong to the
    /// instance, so one line without it (a plain phone, such as the test bed's baresip)
    /// withholds them from all: put such phones in an instance of their own.
    fn capabilities(&self) -> Capabilities {
        let mut capabilities = Capabilities::MAKE_CALL;
        if self.config.rpc.is_some() {
            capabilities |= Capabilities::DROP;
        }
        if self.config.every_phone_is_remote_controlled() {
            capabilities |= Capabilities::ANSWER | Capabilities::HOLD;
        }
        capabilities
    }

    fn identity(&self) -> PbxIdentity {
        PbxIdentity {
            host: Some(self.config.registrar.host.clone()),
            port: Some(self.config.registrar.port),
            default_port: Some(5060),
            name: Some("SIP registrar".into()),
        }
    }

    fn run(self: Box<Self>, cx: ProviderContext) -> BoxFuture<Result<(), ProviderError>> {
        Box::pin(session::run(self.config, cx))
    }

    /// Sends one OPTIONS to the registrar from a socket of its own.
    fn test_connection(&self) -> BoxFuture<Result<TestReport, ProviderError>> {
        let mut config = self.config.clone();
        config.bind.set_port(0);
        Box::pin(async move {
            let lines = config.expand_lines()?.len();
            let stack = Stack::start(&config)
                .await
                .map_err(|e| ProviderError::Config(e.to_string()))?;
            let started = Instant::now();
            let answer = session::options(&stack, &config).await;
            stack.shutdown().await;
            let address = config.registrar_address();
            match answer {
                Ok((code, reason)) => Ok(TestReport {
                    summary: format!(
                        "registrar {address} answered OPTIONS with {code} {reason} in {} ms; {lines} lines configured",
                        started.elapsed().as_millis()
                    ),
                    devices: lines,
                }),
                Err(failure) => Err(ProviderError::Connect {
                    address,
                    reason: failure.to_error("OPTIONS").message,
                }),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PhoneType, RemoteControl};

    fn provider(phone_types: &[Option<RemoteControl>]) -> SipProvider {
        let addresses: Vec<String> = (0..phone_types.len())
            .map(|n| format!("sip:{}@127.0.0.1", 250 + n))
            .collect();
        let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
        let mut config = SipConfig::new("127.0.0.1", 5060, &addresses);
        for (line, control) in config.lines.iter_mut().zip(phone_types) {
            if let Some(control) = control {
                let name = format!("{control:?}");
                config.phone_types.insert(
                    name.clone(),
                    PhoneType {
                        control: *control,
                        ..PhoneType::default()
                    },
                );
                line.phone_type = Some(name);
            }
        }
        SipProvider::new(config).expect("valid")
    }

    #[test]
    fn answer_and_hold_are_offered_only_when_every_phone_takes_remote_control() {
        let remote = Capabilities::ANSWER | Capabilities::HOLD;
        let all = provider(&[Some(RemoteControl::NotifyTalk), Some(RemoteControl::Uacsta)]);
        assert!(all.capabilities().contains(remote));
        for some in [
            provider(&[Some(RemoteControl::NotifyTalk), None]),
            provider(&[Some(RemoteControl::NotifyTalk), Some(RemoteControl::None)]),
            provider(&[None]),
        ] {
            assert_eq!(some.capabilities(), Capabilities::MAKE_CALL);
        }
    }
}
