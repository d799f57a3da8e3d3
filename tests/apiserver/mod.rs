//! An in-process Kubernetes API server for tests, faithful to kube-apiserver for what a
//! scheduler and its operator tools use, and driven through the real kube-rs client.
//!
//! [`TestApiServer::start`] binds `127.0.0.1:0` and serves plain HTTP/1.1 on the current tokio
//! runtime. Clients reach it through [`TestApiServer::client`] (an unauthenticated
//! `kube::Client`) or, from a child process, through [`TestApiServer::write_kubeconfig`].
//! Behind the HTTP front ([`routes`], [`handlers`]) sits a generic JSON [`Store`] with one
//! global resourceVersion counter and a bounded per-resource watch history, applying the
//! per-kind rules a scheduler can observe ([`semantics`]: pod defaults and admission, graceful
//! deletion, bindings). Watches ([`watch`]) follow that history with upstream semantics
//! including bookmarks, selectors and 410 Expired. [`Faults`] injects errors, latency and watch
//! drops; [`TestApiServer::requests`] and [`TestApiServer::bindings`] let tests see what a
//! client did.
//!
//! Not modelled: authentication and RBAC, admission webhooks, field managers of server-side
//! apply (an apply is a strategic merge that may create), conversion between versions of a
//! group, garbage collection, and any controller or kubelet (nothing runs pods; a graceful pod
//! delete leaves the pod marked until a client deletes it with grace 0). Namespaced objects can
//! only be created in existing namespaces; `default`, `kube-system`, `kube-public`,
//! `kube-node-lease` and the `system-*-critical` PriorityClasses exist at start.

mod error;
mod faults;
mod handlers;
mod obj;
mod ops;
mod patch;
mod resources;
mod routes;
mod select;
mod semantics;
mod store;
mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::serve::ListenerExt;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use error::ApiError;
pub use faults::Faults;
pub use store::Store;

/// Tunables of a server; `Default` gives upstream-like values.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Watch events kept per resource (upstream's watch cache capacity); a watch resuming from
    /// before the oldest kept event gets 410 Expired.
    pub history: usize,
    /// How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK.
    pub bookmark_interval: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions { history: 100_000, bookmark_interval: Duration::from_secs(1) }
    }
}

/// One request as RBAC sees it: verb (get/list/watch/create/update/patch/delete/
/// deletecollection), API group ("" for core), resource, subresource ("" if none), namespace ("").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestRecord {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
}

/// State shared by the handle and every request handler.
#[derive(Debug)]
pub(crate) struct Shared {
    pub store: Store,
    pub faults: Faults,
    pub bindings: Mutex<Vec<(String, String, String)>>,
    pub requests: Mutex<Vec<RequestRecord>>,
    pub opts: ServerOptions,
    /// Set at shutdown: new requests get 503.
    pub closed: AtomicBool,
}

/// A running server; stops when dropped or on [`TestApiServer::shutdown`].
#[derive(Debug)]
pub struct TestApiServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestApiServer {
    /// Binds 127.0.0.1:0 and serves on the current tokio runtime (spawned task).
    /// Panics if the loopback port cannot be bound (use [`TestApiServer::try_start_with`]).
    pub async fn start() -> TestApiServer {
        Self::start_with(ServerOptions::default()).await
    }

    /// Same, with options (history length, bookmark interval).
    pub async fn start_with(opts: ServerOptions) -> TestApiServer {
        match Self::try_start_with(opts).await {
            Ok(server) => server,
            Err(e) => panic!("test API server: cannot listen on 127.0.0.1: {e}"),
        }
    }

    /// Like [`TestApiServer::start_with`], reporting a failure to bind instead of panicking.
    pub async fn try_start_with(opts: ServerOptions) -> std::io::Result<TestApiServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let store = Store::new(opts.history);
        semantics::seed(&mut store.lock());
        let shared = Arc::new(Shared {
            store,
            faults: Faults::new(),
            bindings: Mutex::default(),
            requests: Mutex::default(),
            opts,
            closed: AtomicBool::new(false),
        });
        let app =
            Router::new().fallback(routes::handle).layer(DefaultBodyLimit::max(256 << 20)).with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let listener = listener.tap_io(|tcp| {
            // Small request/response pairs must not wait on Nagle + delayed ACK.
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            let _ = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
        });
        Ok(TestApiServer { addr, shared, stop: Some(stop), task: Some(task) })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A plain-HTTP kube client without credentials, default namespace `default`.
    pub fn client(&self) -> kube::Client {
        match self.try_client() {
            Ok(client) => client,
            Err(e) => panic!("test API server: cannot build a kube client for {}: {e}", self.url()),
        }
    }

    /// Like [`TestApiServer::client`], reporting a failure instead of panicking.
    pub fn try_client(&self) -> Result<kube::Client, kube::Error> {
        let uri: http::Uri = self.url().parse().map_err(|e: http::uri::InvalidUri| kube::Error::Service(e.into()))?;
        kube::Client::try_from(kube::Config::new(uri))
    }

    /// Writes a kubeconfig file (cluster server = url, no auth) and returns its path, so a
    /// child process (`tessera run --kubeconfig F`) can reach the server. Panics if the file
    /// cannot be written (use [`TestApiServer::try_write_kubeconfig`]).
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        match self.try_write_kubeconfig(dir) {
            Ok(path) => path,
            Err(e) => panic!("test API server: cannot write a kubeconfig in {}: {e}", dir.display()),
        }
    }

    /// Like [`TestApiServer::write_kubeconfig`], reporting an I/O failure.
    pub fn try_write_kubeconfig(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": "test", "cluster": { "server": self.url() } }],
            "users": [{ "name": "test", "user": {} }],
            "contexts": [{ "name": "test", "context": { "cluster": "test", "user": "test", "namespace": "default" } }],
            "current-context": "test",
        });
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("kubeconfig-{}", self.addr.port()));
        std::fs::write(&path, config.to_string())?;
        Ok(path)
    }

    pub fn store(&self) -> Store {
        self.shared.store.clone()
    }

    pub fn faults(&self) -> Faults {
        self.shared.faults.clone()
    }

    /// Every accepted binding, in order: (namespace, pod name, node name).
    pub fn bindings(&self) -> Vec<(String, String, String)> {
        self.shared.bindings.lock().clone()
    }

    /// Every request served (after path parsing, before faults), in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.requests.lock().clone()
    }

    /// Stops serving: open watches end, new requests get 503, and the listener closes once
    /// in-flight requests finish (bounded to 5 s).
    pub async fn shutdown(mut self) {
        self.signal_stop();
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task).await.is_err() {
                abort.abort();
            }
        }
    }

    fn signal_stop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.faults.drop_watches();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        self.signal_stop();
    }
}
