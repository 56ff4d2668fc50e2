//! SIP over TLS to the registrar: one TLS connection that the provider dials itself and
//! hands to rsipstack, and that carries both its requests and the registrar's.
//!
//! Why one connection of our own and no TLS listener: the registrar's NOTIFYs (and the
//! in-dialog requests of 3PCC calls) are sent to the provider's Contact. With TLS the
//! provider puts the connection's own local address there (`sip:tapir@127.0.0.1:<port of
//! this connection>;transport=tls`): Kamailio finds its open connection by that address
//! (every TCP/TLS connection is known by its peer's address) and sends on it, as for any
//! phone behind NAT. A listener instead would need a server certificate for the provider
//! and Kamailio dialling back, which a PBX link should not need. The price: the Contact is
//! only good while the connection lives, so a new connection (the registrar restarted or
//! closed it) means every subscription is made again; [`TlsLink::replaced`] tells the
//! subscriptions.
//!
//! Why the provider dials and not rsipstack: its own dial trusts only a CA blob given to it,
//! not the system's certificates, so it would behave unlike the AMI and CSTA drivers'
//! `tls_ca_file`. The provider dials with [`tapir_provider::tls`] before every request it
//! starts ([`TlsLink::ensure`]); rsipstack finds the connection in its table under the
//! registrar's address. Should rsipstack ever dial on its own (a message of its own after
//! the connection died), it has no trust anchors and its handshake fails: verification is
//! never skipped.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use rsipstack::transport::tls::TlsConnection;
use rsipstack::transport::{SipAddr, SipConnection, TransportLayer};
use tapir_provider::tls::{self, TlsTarget};
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Why the TLS connection to the registrar could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot connect to {address}: {reason}")]
    Connect { address: SocketAddr, reason: String },
    #[error("TLS with {address}: {source}")]
    Tls {
        address: SocketAddr,
        source: tls::TlsError,
    },
    #[error("TLS with {address}: no handshake within {limit:?}")]
    Timeout {
        address: SocketAddr,
        limit: Duration,
    },
    #[error("TLS with {address}: {reason}")]
    Stack { address: SocketAddr, reason: String },
}

/// The live connection: its local address (the Contact's) and the token rsipstack cancels
/// when the connection ends.
#[derive(Debug, Clone)]
struct Current {
    id: u64,
    local: SocketAddr,
    alive: CancellationToken,
}

/// The provider's TLS connection to the registrar, made anew when it ends.
pub struct TlsLink {
    target: TlsTarget,
    /// The registrar as rsipstack's connection table knows it (`tls`, host, port).
    registrar: SipAddr,
    address: SocketAddr,
    /// Where the provider's end binds (the configured `bind`; port 0 for any).
    bind: SocketAddr,
    limit: Duration,
    current: Mutex<Option<Current>>,
    /// One dial at a time: lines subscribing at once share the connection.
    dialing: tokio::sync::Mutex<()>,
    /// The id of the latest connection (0: none yet).
    ids: watch::Sender<u64>,
    cancel: CancellationToken,
}

impl TlsLink {
    pub fn new(
        target: TlsTarget,
        registrar: SipAddr,
        address: SocketAddr,
        bind: SocketAddr,
        limit: Duration,
        cancel: CancellationToken,
    ) -> TlsLink {
        TlsLink {
            target,
            registrar,
            address,
            bind,
            limit,
            current: Mutex::new(None),
            dialing: tokio::sync::Mutex::new(()),
            ids: watch::Sender::new(0),
            cancel,
        }
    }

    /// The live connection, if any.
    fn live(&self) -> Option<Current> {
        let current = self.current.lock().ok()?.clone()?;
        (!current.alive.is_cancelled()).then_some(current)
    }

    /// The local address of the live connection (the provider's Contact), if any.
    pub fn local(&self) -> Option<SocketAddr> {
        self.live().map(|c| c.local)
    }

    /// The id of the live connection; 0 when there is none.
    pub fn id(&self) -> u64 {
        self.live().map_or(0, |c| c.id)
    }

    /// Resolves once a connection other than `id` is the live one.
    pub async fn replaced(&self, id: u64) {
        let mut ids = self.ids.subscribe();
        if ids.wait_for(|latest| *latest != id).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Makes sure a connection is up, dialling one when there is none.
    pub async fn ensure(&self, transports: &TransportLayer) -> Result<(), LinkError> {
        if self.live().is_some() {
            return Ok(());
        }
        let _dialing = self.dialing.lock().await;
        if self.live().is_some() {
            return Ok(());
        }
        let current = self.dial(transports).await?;
        tracing::info!(registrar = %self.address, local = %current.local, "TLS connection to the registrar");
        let id = current.id;
        if let Ok(mut slot) = self.current.lock() {
            *slot = Some(current);
        }
        self.ids.send_replace(id);
        Ok(())
    }

    async fn dial(&self, transports: &TransportLayer) -> Result<Current, LinkError> {
        let address = self.address;
        let connect = |reason: String| LinkError::Connect { address, reason };
        let socket = if self.bind.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| connect(e.to_string()))?;
        // A fixed `bind` port must be usable again at once after a reconnect.
        socket
            .set_reuseaddr(true)
            .map_err(|e| connect(e.to_string()))?;
        socket
            .bind(self.bind)
            .map_err(|e| connect(format!("binding {}: {e}", self.bind)))?;
        let handshake = async {
            let stream = socket
                .connect(address)
                .await
                .map_err(|e| connect(e.to_string()))?;
            let _ = stream.set_nodelay(true);
            tls::connect(&self.target, stream)
                .await
                .map_err(|source| LinkError::Tls { address, source })
        };
        let stream = tokio::time::timeout(self.limit, handshake)
            .await
            .map_err(|_| LinkError::Timeout {
                address,
                limit: self.limit,
            })??;
        let local = stream
            .get_ref()
            .0
            .local_addr()
            .map_err(|e| connect(e.to_string()))?;
        let alive = self.cancel.child_token();
        let connection =
            TlsConnection::from_client_stream(stream, self.registrar.clone(), Some(alive.clone()))
                .await
                .map_err(|e| LinkError::Stack {
                    address,
                    reason: e.to_string(),
                })?;
        // rsipstack reads it from now on, answers on it, and sends every request for the
        // registrar's address on it.
        transports.add_connection(SipConnection::Tls(connection));
        let id = *self.ids.borrow() + 1;
        Ok(Current { id, local, alive })
    }
}
