//! One line's RFC 4235 dialog subscription at the registrar, as a task: SUBSCRIBE, forward
//! the NOTIFYs, refresh at 80 % of the granted expiry, and subscribe again (after a capped,
//! jittered back-off) whenever the subscription fails, is refused, is terminated by the
//! server, or the owner asks (the registrar came back and may have restarted). On shutdown
//! it unsubscribes (`Expires: 0`), best effort.

use std::sync::Arc;
use std::time::Duration;

use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{self as rsip, Header, Method, Param, Request};
use rsipstack::transaction::make_call_id;
use tapir_provider::DeviceKey;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::stack::{DialogNotify, Stack, uri};
use crate::status::Failure;
use tapir_provider::backoff::Backoff;

/// What a subscription tells the owner loop.
#[derive(Debug)]
pub enum LineEvent {
    /// A new subscription was accepted; its NOTIFYs follow.
    Active {
        device: DeviceKey,
        subscription: String,
    },
    /// The subscription could not be made or was lost; another attempt follows, at once
    /// when `again_at_once` (then only that attempt's outcome says whether the line works).
    Failed {
        device: DeviceKey,
        reason: String,
        again_at_once: bool,
    },
    Notify {
        device: DeviceKey,
        notify: DialogNotify,
    },
}

/// What the owner asks of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Subscribe again now (the registrar may have lost the subscription).
    Resubscribe,
}

/// The settings one subscription needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub device: DeviceKey,
    /// The line's address of record, the subscription's target.
    pub aor: String,
    /// The watcher's From and Contact user.
    pub watcher: String,
    pub watcher_domain: String,
    pub expires: u32,
    pub limit: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

/// A subscription the registrar accepted.
struct Active {
    call_id: String,
    from_tag: String,
    to_tag: String,
    target: rsip::Uri,
    cseq: u32,
    expires: Duration,
    /// The connection to the registrar its Contact names (over TLS; see `tls_link`).
    link: u64,
}

enum Outcome {
    Stop,
    Again { reason: String, immediately: bool },
}

/// Runs one line's subscription until `cancel`.
pub async fn run(
    stack: Arc<Stack>,
    settings: Settings,
    events: mpsc::Sender<LineEvent>,
    mut signals: mpsc::Receiver<Signal>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(settings.retry_min, settings.retry_max);
    loop {
        let (notify_tx, mut notify_rx) = mpsc::channel(64);
        let call_id = make_call_id(None, Default::default()).value().to_owned();
        if let Ok(mut routes) = stack.routes.lock() {
            routes.insert(call_id.clone(), notify_tx);
        }
        let subscribed = tokio::select! {
            () = cancel.cancelled() => None,
            result = subscribe(&stack, &settings, &call_id) => Some(result),
        };
        let outcome = match subscribed {
            None => Outcome::Stop,
            Some(Err(failure)) => Outcome::Again {
                reason: failure.to_error("SUBSCRIBE").message,
                immediately: false,
            },
            Some(Ok(active)) => {
                backoff.reset();
                let event = LineEvent::Active {
                    device: settings.device.clone(),
                    subscription: call_id.clone(),
                };
                if events.send(event).await.is_err() {
                    return;
                }
                follow(
                    &stack,
                    &settings,
                    active,
                    &events,
                    &mut notify_rx,
                    &mut signals,
                    &cancel,
                )
                .await
            }
        };
        if let Ok(mut routes) = stack.routes.lock() {
            routes.remove(&call_id);
        }
        let (reason, immediately) = match outcome {
            Outcome::Stop => return,
            Outcome::Again {
                reason,
                immediately,
            } => (reason, immediately),
        };
        tracing::warn!(line = %settings.aor, %reason, "dialog subscription failed");
        let failed = LineEvent::Failed {
            device: settings.device.clone(),
            reason,
            again_at_once: immediately,
        };
        if events.send(failed).await.is_err() {
            return;
        }
        let delay = if immediately {
            Duration::ZERO
        } else {
            backoff.next_delay()
        };
        // A resubscribe signal cuts the wait short.
        tokio::select! {
            () = cancel.cancelled() => return,
            () = sleep_until(Instant::now() + delay) => {}
            signal = signals.recv() => if signal.is_none() {
                return;
            },
        }
    }
}

/// Follows an accepted subscription until it must be made again or the task stops.
async fn follow(
    stack: &Stack,
    settings: &Settings,
    mut active: Active,
    events: &mpsc::Sender<LineEvent>,
    notifies: &mut mpsc::Receiver<DialogNotify>,
    signals: &mut mpsc::Receiver<Signal>,
    cancel: &CancellationToken,
) -> Outcome {
    let mut refresh_at = Instant::now() + active.expires.mul_f64(0.8);
    loop {
        tokio::select! {
            () = cancel.cancelled() => {
                unsubscribe(stack, settings, &mut active).await;
                return Outcome::Stop;
            }
            () = sleep_until(refresh_at) => {
                match refresh(stack, settings, &mut active, settings.expires).await {
                    Ok(expires) => refresh_at = Instant::now() + expires.mul_f64(0.8),
                    Err(failure) => {
                        return Outcome::Again {
                            reason: failure.to_error("refreshing SUBSCRIBE").message,
                            immediately: true,
                        };
                    }
                }
            }
            notify = notifies.recv() => {
                let Some(notify) = notify else {
                    return Outcome::Again { reason: "NOTIFY route closed".into(), immediately: false };
                };
                let terminated = notify.state == "terminated";
                let event = LineEvent::Notify { device: settings.device.clone(), notify };
                if events.send(event).await.is_err() {
                    return Outcome::Stop;
                }
                if terminated {
                    return Outcome::Again {
                        reason: "the registrar terminated the subscription".into(),
                        immediately: true,
                    };
                }
            }
            () = stack.link_replaced(active.link) => {
                return Outcome::Again {
                    reason: "the TLS connection to the registrar was made anew; NOTIFYs follow the new one".into(),
                    immediately: true,
                };
            }
            signal = signals.recv() => match signal {
                Some(Signal::Resubscribe) => {
                    return Outcome::Again {
                        reason: "resubscribing after the registrar came back".into(),
                        immediately: true,
                    };
                }
                None => return Outcome::Stop,
            },
        }
    }
}

fn subscribe_headers(
    settings: &Settings,
    stack: &Stack,
    expires: u32,
) -> Result<Vec<Header>, Failure> {
    let contact = stack.contact(&settings.watcher)?;
    Ok(vec![
        Header::Event("dialog".into()),
        Header::Accept("application/dialog-info+xml".into()),
        Header::Expires(expires.into()),
        Header::Contact(format!("<{contact}>").into()),
    ])
}

/// The initial SUBSCRIBE.
async fn subscribe(stack: &Stack, settings: &Settings, call_id: &str) -> Result<Active, Failure> {
    let target = uri(&settings.aor)?;
    let watcher = uri(&format!(
        "sip:{}@{}",
        settings.watcher, settings.watcher_domain
    ))?;
    let mut request = stack
        .new_request(
            Method::Subscribe,
            target.clone(),
            watcher,
            target,
            Some(call_id.to_owned()),
        )
        .await?;
    // Read before the Contact is: a connection made anew after this resubscribes.
    let link = stack.link_id();
    request
        .headers
        .extend(subscribe_headers(settings, stack, settings.expires)?);
    let (response, sent) = stack.send(request, settings.limit).await?;
    let code = response.status_code.code();
    if !(200..300).contains(&code) {
        return Err(Failure::Status {
            code,
            reason: response.wire_reason.clone().unwrap_or_default(),
        });
    }
    let to_tag = response
        .to_header()
        .ok()
        .and_then(|to| to.tag().ok().flatten())
        .map(|tag| tag.value().to_owned())
        .ok_or_else(|| Failure::Transport("2xx to SUBSCRIBE without a To tag".into()))?;
    let from_tag = sent
        .from_header()
        .ok()
        .and_then(|from| from.tag().ok().flatten())
        .map(|tag| tag.value().to_owned())
        .ok_or_else(|| Failure::Transport("SUBSCRIBE without a From tag".into()))?;
    let target = contact_uri(&response).unwrap_or_else(|| sent.uri.clone());
    let cseq = sent.cseq_header().and_then(|c| c.seq()).unwrap_or(1);
    Ok(Active {
        call_id: call_id.to_owned(),
        from_tag,
        to_tag,
        target,
        cseq,
        expires: granted(&response, settings.expires),
        link,
    })
}

/// An in-dialog SUBSCRIBE; returns the expiry granted.
async fn refresh(
    stack: &Stack,
    settings: &Settings,
    active: &mut Active,
    expires: u32,
) -> Result<Duration, Failure> {
    active.cseq += 1;
    stack.ensure_link().await?;
    let request = in_dialog(stack, settings, active, expires)?;
    let (response, sent) = stack.send(request, settings.limit).await?;
    active.cseq = sent
        .cseq_header()
        .and_then(|c| c.seq())
        .unwrap_or(active.cseq);
    let code = response.status_code.code();
    if !(200..300).contains(&code) {
        return Err(Failure::Status {
            code,
            reason: response.wire_reason.clone().unwrap_or_default(),
        });
    }
    if let Some(target) = contact_uri(&response) {
        active.target = target;
    }
    Ok(granted(&response, expires))
}

/// Best effort: tells the registrar the subscription is over.
async fn unsubscribe(stack: &Stack, settings: &Settings, active: &mut Active) {
    let limit = settings.limit.min(Duration::from_secs(1));
    let quick = Settings {
        limit,
        ..settings.clone()
    };
    if let Err(failure) = refresh(stack, &quick, active, 0).await {
        tracing::debug!(line = %settings.aor, ?failure, "unSUBSCRIBE not confirmed");
    }
}

fn in_dialog(
    stack: &Stack,
    settings: &Settings,
    active: &Active,
    expires: u32,
) -> Result<Request, Failure> {
    let watcher = uri(&format!(
        "sip:{}@{}",
        settings.watcher, settings.watcher_domain
    ))?;
    let via = stack
        .endpoint()
        .get_via(None, None)
        .map_err(|e| Failure::Transport(format!("no Via: {e}")))?;
    let from = rsip::typed::From {
        display_name: None,
        uri: watcher,
        params: vec![Param::Tag(active.from_tag.clone().into())],
    };
    let to = rsip::typed::To {
        display_name: None,
        uri: uri(&settings.aor)?,
        params: vec![Param::Tag(active.to_tag.clone().into())],
    };
    let mut request = stack.endpoint().make_request(
        Method::Subscribe,
        active.target.clone(),
        via,
        from,
        to,
        active.cseq,
        Some(active.call_id.clone().into()),
    );
    request
        .headers
        .extend(subscribe_headers(settings, stack, expires)?);
    Ok(request)
}

/// The URI of a response's Contact.
fn contact_uri(response: &rsip::Response) -> Option<rsip::Uri> {
    let value = response.header_value("Contact")?;
    let inner = match (value.find('<'), value.find('>')) {
        (Some(start), Some(end)) if start < end => &value[start + 1..end],
        _ => value.split(';').next().unwrap_or(&value),
    };
    rsip::Uri::try_from(inner.trim()).ok()
}

/// The expiry the registrar granted (its `Expires`), or what was asked for.
fn granted(response: &rsip::Response, asked: u32) -> Duration {
    let seconds = response
        .header_value("Expires")
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(asked.max(1));
    Duration::from_secs(u64::from(seconds))
}
