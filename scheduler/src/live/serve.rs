//! The secure port of the live scheduler: `/healthz`, `/livez`, `/readyz` and `/metrics`.
//!
//! It mirrors kube-scheduler's secure serving (port 10259): HTTPS by default, with the
//! certificate from `--tls-cert-file`/`--tls-private-key-file`, or, when neither is given, a
//! self-signed certificate generated in memory for `localhost`, `127.0.0.1` and the bind address.
//! Plain HTTP is only served when `insecure_http` is set explicitly.
//!
//! The probes read a [`Health`], a handful of atomics the rest of the scheduler flips:
//! - `/livez` and `/healthz` answer 200 `ok` while the scheduling loop is alive.
//! - `/readyz` answers 200 once the informer caches have synced. With leader election on, a
//!   synced standby is ready too: it is warm and can take over at once, and failing its probe
//!   would only make Kubernetes restart or unroute it. Otherwise 503 lists the failing check,
//!   in the `[+]name ok` / `[-]name failed: reason` format of the Kubernetes health endpoints
//!   (`?verbose` lists every check on success as well).
//!
//! [`serve`] binds the socket itself, so a busy port is reported before it returns, then runs the
//! server on a spawned task and hands back a [`ServeHandle`] with the bound address (port 0 picks a
//! free one) and the task.

use std::fmt::Write as _;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::task::JoinHandle;

use super::metrics::{self, Metrics};

/// kube-scheduler's secure port.
pub const DEFAULT_SECURE_PORT: u16 = 10259;

/// How long in-flight requests may finish after shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Where and how to serve; the fields match kube-scheduler's secure-serving flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// `--bind-address`: the IP to listen on (`0.0.0.0` for all interfaces).
    pub bind_address: IpAddr,
    /// `--secure-port`; 0 asks the kernel for a free port (see [`ServeHandle::local_addr`]).
    pub port: u16,
    /// `--tls-cert-file`: PEM certificate chain, leaf first. Needs `tls_private_key_file` too.
    pub tls_cert_file: Option<PathBuf>,
    /// `--tls-private-key-file`: PEM private key (PKCS#8, PKCS#1 or SEC1) matching the certificate.
    pub tls_private_key_file: Option<PathBuf>,
    /// Serve plain HTTP instead of HTTPS; for local testing only.
    pub insecure_http: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            bind_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: DEFAULT_SECURE_PORT,
            tls_cert_file: None,
            tls_private_key_file: None,
            insecure_http: false,
        }
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listening socket could not be bound, typically because the address is in use.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that was requested.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Only one of `--tls-cert-file` and `--tls-private-key-file` was given.
    #[error("--{given} is set but --{missing} is not: both are needed to serve a certificate")]
    IncompleteTlsPair {
        /// The flag that was given.
        given: &'static str,
        /// The flag that is missing.
        missing: &'static str,
    },
    /// A certificate or key file could not be read.
    #[error("cannot read {what} file {path}: {source}")]
    ReadFile {
        /// "certificate" or "private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A certificate or key file was read but holds no usable PEM item of the expected kind.
    #[error("{what} file {path} is not valid PEM: {reason}")]
    InvalidPem {
        /// "certificate" or "private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the PEM parser reported.
        reason: String,
    },
    /// rustls rejected the certificate/key pair (e.g. unsupported key type or the key does not match).
    #[error("certificate {cert} with key {key} cannot be used for TLS: {source}")]
    TlsConfig {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// The rustls error.
        source: rustls::Error,
    },
    /// Generating or loading the in-memory self-signed certificate failed.
    #[error("cannot create a self-signed serving certificate: {0}")]
    SelfSigned(String),
    /// The server stopped with an I/O error after it had started.
    #[error("serving on {addr} failed: {source}")]
    Serve {
        /// The bound address.
        addr: SocketAddr,
        /// The error from the accept loop.
        source: std::io::Error,
    },
    /// The server task panicked or was cancelled.
    #[error("the server task on {addr} ended abnormally: {reason}")]
    Task {
        /// The bound address.
        addr: SocketAddr,
        /// The join error.
        reason: String,
    },
}

/// The state behind the probes, shared as `Arc<Health>` and flipped by the scheduler.
///
/// Starts alive, not synced, not leading, leader election off.
#[derive(Debug)]
pub struct Health {
    alive: AtomicBool,
    synced: AtomicBool,
    leader: AtomicBool,
    leader_election_enabled: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            alive: AtomicBool::new(true),
            synced: AtomicBool::new(false),
            leader: AtomicBool::new(false),
            leader_election_enabled: AtomicBool::new(false),
        }
    }
}

impl Health {
    /// A fresh state: alive, caches not synced yet, not leading.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the informer caches have completed their initial list.
    pub fn set_synced(&self, synced: bool) {
        self.synced.store(synced, Ordering::Release);
    }

    /// Whether this replica currently holds the leader lease.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Release);
    }

    /// Whether replicas elect a leader (otherwise this one always schedules).
    pub fn set_leader_election_enabled(&self, enabled: bool) {
        self.leader_election_enabled.store(enabled, Ordering::Release);
    }

    /// Whether the scheduling loop is still running; `false` fails `/livez` so the kubelet restarts us.
    pub fn set_alive(&self, alive: bool) {
        self.alive.store(alive, Ordering::Release);
    }

    /// See [`Health::set_synced`].
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// See [`Health::set_leader`].
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    /// See [`Health::set_leader_election_enabled`].
    pub fn is_leader_election_enabled(&self) -> bool {
        self.leader_election_enabled.load(Ordering::Acquire)
    }

    /// See [`Health::set_alive`].
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    fn ping(&self) -> Check {
        Check { name: "ping", failure: (!self.is_alive()).then_some("the scheduling loop is not running"), note: None }
    }

    fn readiness_checks(&self) -> Vec<Check> {
        let sync = Check {
            name: "informer-sync",
            failure: (!self.is_synced()).then_some("informer caches have not synced yet"),
            note: None,
        };
        let mut checks = vec![self.ping(), sync];
        if self.is_leader_election_enabled() {
            // Informational only: a warm standby is ready.
            let role = if self.is_leader() { "leading" } else { "standby" };
            checks.push(Check { name: "leader-election", failure: None, note: Some(role) });
        }
        checks
    }
}

/// One named probe check, rendered like the Kubernetes healthz checks.
#[derive(Debug, Clone, Copy)]
struct Check {
    name: &'static str,
    failure: Option<&'static str>,
    note: Option<&'static str>,
}

/// Renders `checks` for the probe `probe`: 200 `ok` when all pass (unless verbose), 503 otherwise.
fn probe_response(probe: &str, checks: &[Check], verbose: bool) -> (StatusCode, String) {
    let failed = checks.iter().any(|c| c.failure.is_some());
    if !failed && !verbose {
        return (StatusCode::OK, "ok".to_owned());
    }
    let mut body = String::new();
    for check in checks {
        // Writing to a String cannot fail.
        let _ = match (check.failure, check.note) {
            (Some(reason), _) => writeln!(body, "[-]{} failed: {reason}", check.name),
            (None, Some(note)) => writeln!(body, "[+]{} ok ({note})", check.name),
            (None, None) => writeln!(body, "[+]{} ok", check.name),
        };
    }
    if failed {
        let _ = write!(body, "{probe} check failed");
        (StatusCode::SERVICE_UNAVAILABLE, body)
    } else {
        let _ = write!(body, "{probe} check passed");
        (StatusCode::OK, body)
    }
}

/// `?verbose` or `?verbose=...` in the query string, as in the Kubernetes health endpoints.
fn is_verbose(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|kv| kv == "verbose" || kv.starts_with("verbose=")))
}

#[derive(Debug, Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

async fn livez(State(state): State<AppState>, RawQuery(query): RawQuery) -> (StatusCode, String) {
    probe_response("livez", &[state.health.ping()], is_verbose(query.as_deref()))
}

async fn healthz(State(state): State<AppState>, RawQuery(query): RawQuery) -> (StatusCode, String) {
    probe_response("healthz", &[state.health.ping()], is_verbose(query.as_deref()))
}

async fn readyz(State(state): State<AppState>, RawQuery(query): RawQuery) -> (StatusCode, String) {
    probe_response("readyz", &state.health.readiness_checks(), is_verbose(query.as_deref()))
}

async fn metrics_handler(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], state.metrics.encode()).into_response()
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "404 page not found\n")
}

/// The routes of the secure port.
pub fn router(metrics: Arc<Metrics>, health: Arc<Health>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .fallback(not_found)
        .with_state(AppState { metrics, health })
}

/// A running server: its bound address and the task serving it.
#[derive(Debug)]
pub struct ServeHandle {
    local_addr: SocketAddr,
    tls: bool,
    task: JoinHandle<Result<(), ServeError>>,
}

impl ServeHandle {
    /// The address actually bound (the real port when port 0 was requested).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether the server speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Waits until the server has stopped (after the shutdown future completed and in-flight
    /// requests finished, or on an accept-loop error).
    pub async fn wait(self) -> Result<(), ServeError> {
        let addr = self.local_addr;
        self.task.await.map_err(|e| ServeError::Task { addr, reason: e.to_string() })?
    }
}

/// Starts serving the probes and metrics; see the module docs.
///
/// Returns once the socket is bound and TLS is configured. The server keeps running on a spawned
/// task until `shutdown` completes, then lets in-flight requests finish for a few seconds.
pub async fn serve(
    opts: ServeOptions,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<ServeHandle, ServeError> {
    let tls = if opts.insecure_http { None } else { Some(tls_server_config(&opts)?) };
    let requested = SocketAddr::new(opts.bind_address, opts.port);
    let bind_err = |source| ServeError::Bind { addr: requested, source };
    let listener = std::net::TcpListener::bind(requested).map_err(bind_err)?;
    let local_addr = listener.local_addr().map_err(bind_err)?;
    let app = router(metrics, health).into_make_service();
    let handle = axum_server::Handle::new();
    let serve_err = move |source| ServeError::Serve { addr: local_addr, source };
    let is_tls = tls.is_some();
    let server_future = match tls {
        None => {
            let server = axum_server::from_tcp(listener).map_err(bind_err)?.handle(handle.clone());
            futures::future::Either::Left(server.serve(app))
        }
        Some(config) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config));
            let server =
                axum_server::tls_rustls::from_tcp_rustls(listener, config).map_err(bind_err)?.handle(handle.clone());
            futures::future::Either::Right(server.serve(app))
        }
    };
    tracing::info!(addr = %local_addr, tls = is_tls, "serving /healthz, /livez, /readyz and /metrics");
    let task = tokio::spawn(async move {
        tokio::pin!(server_future);
        tokio::select! {
            result = &mut server_future => return result.map_err(serve_err),
            () = shutdown => handle.graceful_shutdown(Some(SHUTDOWN_GRACE)),
        }
        server_future.await.map_err(serve_err)
    });
    Ok(ServeHandle { local_addr, tls: is_tls, task })
}

/// Installs ring as the process-wide rustls provider unless one is installed already.
fn install_crypto_provider() {
    // Err only means another provider was installed first, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds the rustls server configuration from the given files or a fresh self-signed certificate.
fn tls_server_config(opts: &ServeOptions) -> Result<ServerConfig, ServeError> {
    install_crypto_provider();
    let (chain, key, files) = match (&opts.tls_cert_file, &opts.tls_private_key_file) {
        (Some(cert), Some(key)) => (read_cert_chain(cert)?, read_private_key(key)?, Some((cert, key))),
        (Some(_), None) => {
            return Err(ServeError::IncompleteTlsPair { given: "tls-cert-file", missing: "tls-private-key-file" });
        }
        (None, Some(_)) => {
            return Err(ServeError::IncompleteTlsPair { given: "tls-private-key-file", missing: "tls-cert-file" });
        }
        (None, None) => {
            let (chain, key) = self_signed(opts.bind_address)?;
            (chain, key, None)
        }
    };
    // An explicit provider avoids relying on (and panicking over) the process default.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config_err = |source: rustls::Error| match files {
        Some((cert, key)) => ServeError::TlsConfig { cert: cert.clone(), key: key.clone(), source },
        None => ServeError::SelfSigned(source.to_string()),
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(config_err)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(config_err)?;
    // axum is built for HTTP/1.1 only, so that is all we offer in ALPN.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|source| ServeError::ReadFile { what, path: path.to_owned(), source })
}

fn read_cert_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServeError> {
    const WHAT: &str = "certificate";
    let invalid = |reason: String| ServeError::InvalidPem { what: WHAT, path: path.to_owned(), reason };
    let pem = read_file(WHAT, path)?;
    let chain =
        CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>().map_err(|e| invalid(e.to_string()))?;
    if chain.is_empty() {
        return Err(invalid("no CERTIFICATE block found".to_owned()));
    }
    Ok(chain)
}

fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, ServeError> {
    const WHAT: &str = "private key";
    let pem = read_file(WHAT, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| ServeError::InvalidPem {
        what: WHAT,
        path: path.to_owned(),
        reason: match e {
            rustls::pki_types::pem::Error::NoItemsFound => "no PRIVATE KEY block found".to_owned(),
            other => other.to_string(),
        },
    })
}

/// The names the self-signed certificate is valid for, as kube-scheduler's self-signed cert.
fn self_signed_names(bind_address: IpAddr) -> Vec<String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    if !bind_address.is_unspecified() && !bind_address.is_loopback() {
        names.push(bind_address.to_string());
    }
    names
}

fn self_signed(bind_address: IpAddr) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ServeError> {
    let names = self_signed_names(bind_address);
    let generated =
        rcgen::generate_simple_self_signed(names.clone()).map_err(|e| ServeError::SelfSigned(e.to_string()))?;
    tracing::info!(
        ?names,
        "no --tls-cert-file/--tls-private-key-file given: serving a self-signed certificate generated in memory"
    );
    let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der())
        .map_err(|e| ServeError::SelfSigned(e.to_owned()))?;
    Ok((vec![generated.cert.der().clone()], key))
}

#[cfg(test)]
#[path = "serve_tests.rs"]
mod tests;
