//! Operator tools that talk to a live cluster but are not the scheduler itself.
//!
//! [`loadtest`] is the scale test to run before trusting a scheduler: it registers fake nodes
//! (objects only, no kubelet behind them, as kubemark and kwok do), creates pods for the
//! scheduler under test and measures how fast and how well they get bound. [`snapshot`] copies
//! the objects scheduling depends on out of a live cluster into one YAML file that
//! `tessera simulate --cluster FILE` replays, so a what-if runs on the real cluster's shape.
//!
//! Both go through [`connect`] for a client and report API failures as [`OpsError::Api`],
//! which names the call and the object and turns the HTTP status into advice (401: the
//! credentials, 403: RBAC, unreachable: the address), since the person reading it is at a
//! terminal, not in a debugger.

pub mod loadtest;
pub mod snapshot;

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};
use thiserror::Error;

/// Why an operator tool stopped.
#[derive(Debug, Error)]
pub enum OpsError {
    /// The `--kubeconfig` file could not be read or does not describe a usable cluster.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Neither `KUBECONFIG`, `~/.kube/config` nor an in-cluster service account gave a client,
    /// or the client could not be built from the configuration found.
    #[error("cannot build a Kubernetes client: {0}")]
    Client(String),
    /// A request to the API server failed; `call` is the verb and resource, `object` the
    /// object's `namespace/name` (or the collection listed).
    #[error("{call} {object}: {reason}")]
    Api {
        /// What was asked, e.g. `create (POST) Pod`.
        call: String,
        /// Which object or collection.
        object: String,
        /// The HTTP status, when the server answered.
        code: Option<u16>,
        /// The status and what it usually means.
        reason: String,
    },
    /// An option is out of range or not a valid quantity.
    #[error("--{option}: {message}")]
    Option {
        /// The command-line option (without the dashes).
        option: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A name the run needs is held by an object it must not touch (a real Node with a fake
    /// node's name, pods left by an earlier run, a namespace being deleted).
    #[error("{object}: {message}")]
    Conflict {
        /// The object in the way.
        object: String,
        /// Why it is in the way and what to do.
        message: String,
    },
    /// The scheduler's `/metrics` could not be fetched or lacks `process_cpu_seconds_total`.
    #[error("metrics {url}: {message}")]
    Metrics {
        /// The URL given with `--metrics-url`.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// An object listed from the cluster could not be turned into YAML.
    #[error("writing {kind} {name} as YAML: {message}")]
    Encode {
        /// The object's kind.
        kind: String,
        /// The object's `namespace/name`.
        name: String,
        /// The serializer's message.
        message: String,
    },
}

impl OpsError {
    /// Wraps a client error with the call and object it concerns.
    pub fn api(call: impl Into<String>, object: impl Into<String>, error: &kube::Error) -> Self {
        OpsError::Api { call: call.into(), object: object.into(), code: status_code(error), reason: explain(error) }
    }

    /// Whether the server said the object, or the whole API, does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, OpsError::Api { code: Some(404), .. })
    }
}

/// The HTTP status of an API error, if the server answered.
pub fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// The error as a sentence that says what to check; API errors start with their status code.
fn explain(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            let hint = match status.code {
                401 => " (the API server refused the credentials: check the kubeconfig's user or token)",
                403 => " (forbidden: the user's RBAC roles do not allow this call)",
                404 => " (not found: the object is gone, or the API is not served by this cluster)",
                409 => " (conflict: the object already exists or changed meanwhile)",
                _ => "",
            };
            let reason = if status.reason.is_empty() { "Error" } else { status.reason.as_str() };
            format!("{} {reason}: {}{hint}", status.code, status.message)
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            format!("cannot reach the API server ({error}): check the server address and that it is up")
        }
        other => other.to_string(),
    }
}

/// A client from `--kubeconfig` when given, else `KUBECONFIG` / `~/.kube/config`, else the
/// in-cluster service account (what `kubectl` and kube-scheduler do).
pub async fn connect(kubeconfig: Option<&Path>) -> Result<kube::Client, OpsError> {
    let config = match kubeconfig {
        Some(path) => {
            let bad = |message: String| OpsError::Kubeconfig { path: path.to_path_buf(), message };
            let file = Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|e| bad(e.to_string()))?
        }
        None => kube::Config::infer().await.map_err(|e| OpsError::Client(e.to_string()))?,
    };
    kube::Client::try_from(config).map_err(|e| OpsError::Client(e.to_string()))
}

/// `namespace/name`, or `name` for cluster-scoped objects, as kubectl prints them.
fn object_name(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}
