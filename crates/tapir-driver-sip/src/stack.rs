//! rsipstack put together for the provider: one endpoint with its transport bound to the
//! configured address, a dialog layer for 3PCC, requests to the registrar that answer digest
//! challenges, and the dispatch of incoming requests.
//!
//! Every request goes to the registrar (rsipstack's outbound proxy), whatever its
//! Request-URI: Kamailio routes it. The provider never resolves names. Over UDP and TCP the
//! provider listens on `bind`; over TLS it has no listener but one connection of its own to
//! the registrar ([`TlsLink`], which says why), dialled before each request it starts.
//!
//! Incoming requests are sorted by one task: dialog NOTIFYs of the line subscriptions go to
//! the owner loop by their Call-ID (the table is shared with the subscription tasks under a
//! std `Mutex` that is never held across `.await`); requests inside a 3PCC dialog go to
//! rsipstack's dialog layer, each handled in a task of a `JoinSet` that ends with the
//! dispatcher.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rsipstack::dialog::authenticate::{Credential, handle_client_authenticate};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{self as rsip, Method, Param, Request, Response, SipMessage, StatusCode};
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transaction::{Endpoint, EndpointBuilder, TransactionReceiver, make_tag};
use rsipstack::transport::tcp_listener::TcpListenerConnection;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{SipAddr, TransportLayer};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{SipConfig, Transport};
use crate::status::Failure;
use crate::tls_link::TlsLink;

/// The `User-Agent` of the provider's requests.
pub const USER_AGENT: &str = concat!("tapir-sip/", env!("CARGO_PKG_VERSION"));

/// A dialog NOTIFY of a line subscription, for the owner loop.
#[derive(Debug, Clone)]
pub struct DialogNotify {
    /// The subscription's Call-ID.
    pub subscription: String,
    /// `active`, `pending` or `terminated` (the value before `;`).
    pub state: String,
    pub body: Vec<u8>,
    /// The body is shorter than its Content-Length: the datagram was cut at rsipstack's
    /// 8 KB UDP receive buffer.
    pub truncated: bool,
}

/// Subscription Call-ID → who receives its NOTIFYs.
pub type Routes = Arc<Mutex<HashMap<String, mpsc::Sender<DialogNotify>>>>;

/// Why the stack could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the SIP transport on {address}: {reason}")]
pub struct StartError {
    pub address: String,
    pub reason: String,
}

/// The running SIP stack.
pub struct Stack {
    endpoint: Endpoint,
    pub dialogs: Arc<DialogLayer>,
    /// The address the transport listens on (the configured one with the real port); over
    /// TLS the configured one, the connection's being [`Stack::local`].
    bound: SocketAddr,
    pub transport: Transport,
    /// The connection to the registrar, over TLS.
    tls: Option<TlsLink>,
    registrar: SipAddr,
    credential: Option<Credential>,
    pub routes: Routes,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

impl Stack {
    /// Binds the transport and starts the endpoint and the dispatcher.
    pub async fn start(config: &SipConfig) -> Result<Stack, StartError> {
        let cancel = CancellationToken::new();
        let error = |reason: String| StartError {
            address: config.bind.to_string(),
            reason,
        };
        let mut transport_layer = TransportLayer::new(cancel.child_token());
        let registrar_transport = match config.registrar.transport {
            Transport::Udp => rsip::Transport::Udp,
            Transport::Tcp => rsip::Transport::Tcp,
            Transport::Tls => rsip::Transport::Tls,
        };
        let bound = match config.registrar.transport {
            Transport::Udp => {
                let udp =
                    UdpConnection::create_connection(config.bind, None, Some(cancel.child_token()))
                        .await
                        .map_err(|e| error(e.to_string()))?;
                let local = socket_addr(udp.get_addr()).unwrap_or(config.bind);
                transport_layer.add_transport(udp.into());
                local
            }
            Transport::Tcp => {
                let mut bind = config.bind;
                if bind.port() == 0 {
                    let probe =
                        std::net::TcpListener::bind(bind).map_err(|e| error(e.to_string()))?;
                    bind = probe.local_addr().map_err(|e| error(e.to_string()))?;
                }
                let tcp = TcpListenerConnection::new(bind, None)
                    .await
                    .map_err(|e| error(e.to_string()))?;
                transport_layer.add_transport(tcp.into());
                bind
            }
            Transport::Tls => config.bind,
        };
        let registrar = SipAddr {
            r#type: Some(registrar_transport),
            addr: rsip::HostWithPort::try_from(config.registrar_address().as_str())
                .map_err(|e| error(format!("registrar address: {e}")))?,
        };
        let tls = match config.registrar.transport {
            Transport::Tls => {
                let host = config
                    .registrar
                    .host
                    .parse()
                    .map_err(|e| error(format!("registrar host: {e}")))?;
                Some(TlsLink::new(
                    config.registrar.tls_target(),
                    registrar.clone(),
                    SocketAddr::new(host, config.registrar.port),
                    config.bind,
                    config.request_timeout(),
                    cancel.child_token(),
                ))
            }
            Transport::Udp | Transport::Tcp => None,
        };
        transport_layer.outbound = Some(registrar.clone());
        let endpoint = EndpointBuilder::new()
            .with_user_agent(USER_AGENT)
            .with_transport_layer(transport_layer)
            .with_cancel_token(cancel.child_token())
            .build();
        let incoming = endpoint
            .incoming_transactions()
            .map_err(|e| error(e.to_string()))?;
        let dialogs = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let routes: Routes = Arc::default();
        let mut tasks = JoinSet::new();
        let inner = endpoint.inner.clone();
        tasks.spawn(async move {
            if let Err(error) = inner.serve().await {
                tracing::warn!(%error, "SIP endpoint stopped");
            }
        });
        tasks.spawn(dispatch(
            incoming,
            dialogs.clone(),
            routes.clone(),
            cancel.child_token(),
        ));
        let credential = config.credentials.as_ref().map(|c| Credential {
            username: c.username.clone(),
            password: c.password.clone(),
            realm: c.realm.clone(),
            ..Credential::default()
        });
        Ok(Stack {
            endpoint,
            dialogs,
            bound,
            transport: config.registrar.transport,
            tls,
            registrar,
            credential,
            routes,
            cancel,
            tasks,
        })
    }

    pub fn endpoint(&self) -> &EndpointInnerRef {
        &self.endpoint.inner
    }

    pub fn credential(&self) -> Option<Credential> {
        self.credential.clone()
    }

    /// The address every request is sent to.
    pub fn registrar(&self) -> SipAddr {
        self.registrar.clone()
    }

    /// Where the provider receives SIP: its listener, or over TLS its connection to the
    /// registrar (the bound address while there is none).
    pub fn local(&self) -> SocketAddr {
        self.tls
            .as_ref()
            .and_then(TlsLink::local)
            .unwrap_or(self.bound)
    }

    /// Our contact URI for `user`: `sip:user@<local>[;transport=tcp|tls]`. Over TLS it names
    /// the live connection, so [`Stack::ensure_link`] comes first.
    pub fn contact(&self, user: &str) -> Result<rsip::Uri, Failure> {
        let transport = match self.transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            Transport::Tls => ";transport=tls",
        };
        if self.tls.as_ref().is_some_and(|link| link.local().is_none()) {
            return Err(Failure::Transport(
                "no TLS connection to the registrar".into(),
            ));
        }
        uri(&format!("sip:{user}@{}{transport}", self.local()))
    }

    /// Over TLS, makes sure the connection to the registrar is up (dialling it when not);
    /// nothing to do over UDP and TCP.
    pub async fn ensure_link(&self) -> Result<(), Failure> {
        let Some(link) = &self.tls else {
            return Ok(());
        };
        link.ensure(&self.endpoint.inner.transport_layer)
            .await
            .map_err(|e| Failure::Transport(e.to_string()))
    }

    /// Which connection to the registrar requests go out on now (0 over UDP and TCP, and
    /// over TLS while there is none).
    pub fn link_id(&self) -> u64 {
        self.tls.as_ref().map_or(0, TlsLink::id)
    }

    /// Resolves once the connection `id` was replaced by another (never over UDP and TCP):
    /// a Contact naming the old one no longer reaches the provider.
    pub async fn link_replaced(&self, id: u64) {
        match &self.tls {
            Some(link) => link.replaced(id).await,
            None => std::future::pending().await,
        }
    }

    /// A new out-of-dialog request from `from` (with a fresh tag) to `to`, over the link
    /// [`Stack::ensure_link`] made sure of.
    pub async fn new_request(
        &self,
        method: Method,
        request_uri: rsip::Uri,
        from: rsip::Uri,
        to: rsip::Uri,
        call_id: Option<String>,
    ) -> Result<Request, Failure> {
        self.ensure_link().await?;
        let via = self
            .endpoint
            .inner
            .get_via(None, None)
            .map_err(|e| Failure::Transport(format!("no Via: {e}")))?;
        let from = rsip::typed::From {
            display_name: None,
            uri: from,
            params: vec![Param::Tag(make_tag())],
        };
        let to = rsip::typed::To {
            display_name: None,
            uri: to,
            params: vec![],
        };
        Ok(self.endpoint.inner.make_request(
            method,
            request_uri,
            via,
            from,
            to,
            1,
            call_id.map(rsip::headers::CallId::from),
        ))
    }

    /// Sends `request` to the registrar as a client transaction and returns its final
    /// response, answering one digest challenge when credentials are configured. Returns the
    /// request as finally sent (its CSeq may have grown).
    pub async fn send(
        &self,
        request: Request,
        limit: Duration,
    ) -> Result<(Response, Request), Failure> {
        self.ensure_link().await?;
        let key = TransactionKey::from_request(&request, TransactionRole::Client)
            .map_err(|e| Failure::Transport(e.to_string()))?;
        let mut tx = Transaction::new_client(key, request, self.endpoint.inner.clone(), None);
        tx.destination = Some(self.registrar.clone());
        tx.send()
            .await
            .map_err(|e| Failure::Transport(e.to_string()))?;
        let mut challenged = false;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let message = tokio::time::timeout_at(deadline, tx.receive())
                .await
                .map_err(|_| Failure::Timeout(format!("{} after {limit:?}", tx.original.method)))?;
            let Some(message) = message else {
                return Err(Failure::Timeout(format!(
                    "{} transaction ended without a final response",
                    tx.original.method
                )));
            };
            let SipMessage::Response(response) = message else {
                continue;
            };
            let code = response.status_code.code();
            if code < 200 {
                continue;
            }
            if matches!(code, 401 | 407)
                && !challenged
                && let Some(credential) = &self.credential
            {
                challenged = true;
                let seq = tx
                    .original
                    .cseq_header()
                    .and_then(|c| c.seq())
                    .map_err(|e| Failure::Transport(e.to_string()))?;
                let mut next = handle_client_authenticate(seq + 1, &tx, response, credential)
                    .await
                    .map_err(|e| Failure::Transport(format!("digest answer: {e}")))?;
                next.destination = Some(self.registrar.clone());
                next.send()
                    .await
                    .map_err(|e| Failure::Transport(e.to_string()))?;
                tx = next;
                continue;
            }
            return Ok((response, tx.original.clone()));
        }
    }

    /// Stops the endpoint and the dispatcher and waits for them.
    pub async fn shutdown(mut self) {
        self.endpoint.shutdown();
        self.cancel.cancel();
        let wait = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(2), wait)
            .await
            .is_err()
        {
            self.tasks.abort_all();
        }
    }
}

/// Parses a URI built by the provider (from configured, checked parts).
pub fn uri(text: &str) -> Result<rsip::Uri, Failure> {
    rsip::Uri::try_from(text).map_err(|e| Failure::Transport(format!("bad URI `{text}`: {e}")))
}

fn socket_addr(addr: &SipAddr) -> Option<SocketAddr> {
    addr.addr.to_string().parse().ok()
}

/// The value of header `name` in `request`, if any.
pub fn header(request: &Request, name: &str) -> Option<String> {
    request.header_value(name)
}

/// Sorts incoming requests until cancelled.
async fn dispatch(
    mut incoming: TransactionReceiver,
    dialogs: Arc<DialogLayer>,
    routes: Routes,
    cancel: CancellationToken,
) {
    let mut handlers = JoinSet::new();
    loop {
        let tx = tokio::select! {
            () = cancel.cancelled() => break,
            Some(_) = handlers.join_next(), if !handlers.is_empty() => continue,
            tx = incoming.recv() => match tx {
                Some(tx) => tx,
                None => break,
            },
        };
        let method = tx.original.method;
        if let Err(reason) = route(tx, &dialogs, &routes, &mut handlers).await {
            tracing::warn!(%method, %reason, "incoming SIP request not handled");
        }
    }
    handlers.abort_all();
}

async fn route(
    mut tx: Transaction,
    dialogs: &DialogLayer,
    routes: &Routes,
    handlers: &mut JoinSet<()>,
) -> Result<(), String> {
    let request = &tx.original;
    let event = header(request, "Event").unwrap_or_default();
    let is_dialog_event = event
        .split(';')
        .next()
        .is_some_and(|e| e.trim().eq_ignore_ascii_case("dialog"));
    if request.method == Method::Notify && is_dialog_event {
        let call_id = request
            .call_id_header()
            .map(|c| c.value().to_owned())
            .map_err(|e| format!("NOTIFY without Call-ID: {e}"))?;
        let receiver = routes
            .lock()
            .map_err(|_| "route table poisoned".to_string())?
            .get(&call_id)
            .cloned();
        let Some(receiver) = receiver else {
            tx.reply(StatusCode::CallTransactionDoesNotExist)
                .await
                .map_err(|e| e.to_string())?;
            // Late NOTIFYs of a subscription just ended (unSUBSCRIBE) land here too.
            tracing::debug!(%call_id, "dialog NOTIFY for an unknown subscription, answered 481");
            return Ok(());
        };
        let state = header(request, "Subscription-State")
            .and_then(|s| s.split(';').next().map(|v| v.trim().to_ascii_lowercase()))
            .unwrap_or_default();
        let truncated = header(request, "Content-Length")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .is_some_and(|declared| request.body.len() < declared);
        let notify = DialogNotify {
            subscription: call_id,
            state,
            body: request.body.clone(),
            truncated,
        };
        tx.reply(StatusCode::OK).await.map_err(|e| e.to_string())?;
        // A full queue means the owner is far behind; the next NOTIFY is a full state again.
        if receiver.try_send(notify).is_err() {
            tracing::warn!("dialog NOTIFY dropped: the provider is not keeping up");
        }
        return Ok(());
    }
    if let Some(mut dialog) = dialogs.match_dialog(&tx) {
        // The dialog answers through its state channel; run it beside the dispatcher.
        handlers.spawn(async move {
            if let Err(error) = dialog.handle(&mut tx).await {
                tracing::debug!(%error, "in-dialog request");
            }
        });
        return Ok(());
    }
    match request.method {
        Method::Options => tx.reply(StatusCode::OK).await.map_err(|e| e.to_string()),
        Method::Ack => Ok(()),
        Method::Notify | Method::Bye | Method::Refer | Method::Info | Method::Update => tx
            .reply(StatusCode::CallTransactionDoesNotExist)
            .await
            .map_err(|e| e.to_string()),
        _ => tx
            .reply(StatusCode::MethodNotAllowed)
            .await
            .map_err(|e| e.to_string()),
    }
}
