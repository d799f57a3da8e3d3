//! API errors as kube-apiserver reports them: every failure becomes a `Status` object
//! (`kind: Status, status: Failure, reason, code, details`) with the matching HTTP status, which
//! kube-rs turns into `kube::Error::Api`. Messages copy upstream wording where clients match on it.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use super::resources::ResourceInfo;

/// Why a request failed; each maps to one upstream `StatusReason` and HTTP code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The object, or the namespace it should live in, does not exist (404).
    #[error("{resource} \"{name}\" not found")]
    NotFound { resource: String, name: String },
    /// A create named an object that already exists (409).
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists { resource: String, name: String },
    /// A precondition failed: stale resourceVersion, uid mismatch, pod already bound (409).
    #[error("Operation cannot be fulfilled on {resource} \"{name}\": {detail}")]
    Conflict { resource: String, name: String, detail: String },
    /// The request itself is malformed: unparsable body, selector or query (400).
    #[error("{0}")]
    BadRequest(String),
    /// The object fails validation, e.g. it has no name (422).
    #[error("{resource} \"{name}\" is invalid: {detail}")]
    Invalid { resource: String, name: String, detail: String },
    /// An admission rule refused the object, e.g. an unknown PriorityClass (403).
    #[error("{0}")]
    Forbidden(String),
    /// The path names no resource this server knows (404, reason NotFound, no details).
    #[error("the server could not find the requested resource")]
    UnknownPath,
    /// The verb is not allowed on this path, e.g. POST to an object (405).
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// A fault injected through [`super::Faults`]; carries the status to answer with.
    #[error("injected fault: {code} for {verb} {resource}")]
    Injected { code: u16, verb: String, resource: String, retry_after: Option<u64> },
    /// The server is shutting down (503).
    #[error("the test API server is shutting down")]
    ShuttingDown,
}

impl ApiError {
    pub(crate) fn not_found(info: &ResourceInfo, name: &str) -> Self {
        ApiError::NotFound { resource: info.qualified(), name: name.to_string() }
    }

    pub(crate) fn conflict(info: &ResourceInfo, name: &str, detail: impl Into<String>) -> Self {
        ApiError::Conflict { resource: info.qualified(), name: name.to_string(), detail: detail.into() }
    }

    pub(crate) fn invalid(info: &ResourceInfo, name: &str, detail: impl Into<String>) -> Self {
        ApiError::Invalid { resource: info.qualified(), name: name.to_string(), detail: detail.into() }
    }

    /// The optimistic-concurrency failure upstream returns for a stale resourceVersion.
    pub(crate) fn stale(info: &ResourceInfo, name: &str) -> Self {
        Self::conflict(
            info,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn code(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } | ApiError::UnknownPath => 404,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => 409,
            ApiError::BadRequest(_) => 400,
            ApiError::Invalid { .. } => 422,
            ApiError::Forbidden(_) => 403,
            ApiError::MethodNotAllowed => 405,
            ApiError::Injected { code, .. } => *code,
            ApiError::ShuttingDown => 503,
        }
    }

    /// Upstream `metav1.StatusReason` for the code.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            _ => reason_for(self.code()),
        }
    }

    /// The `Status` object kube-apiserver would send.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        let details = match self {
            ApiError::NotFound { resource, name }
            | ApiError::AlreadyExists { resource, name }
            | ApiError::Conflict { resource, name, .. }
            | ApiError::Invalid { resource, name, .. } => Some(details(resource, name)),
            ApiError::Injected { retry_after: Some(s), .. } => Some(json!({ "retryAfterSeconds": s })),
            _ => None,
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        status
    }

    pub(crate) fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = json_response(code, self.to_status().to_string().into_bytes());
        if let ApiError::Injected { retry_after: Some(s), .. } = self
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// Splits `leases.coordination.k8s.io` into details' `kind` (resource) and `group`.
fn details(resource: &str, name: &str) -> Value {
    let (kind, group) = resource.split_once('.').unwrap_or((resource, ""));
    let mut d = json!({ "name": name, "kind": kind });
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    d
}

/// Upstream reason string for an HTTP code (as `StatusReasonForCode` / `NewGenericServerResponse`).
pub(crate) fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

/// A response with a JSON body and `Content-Type: application/json`.
pub(crate) fn json_response(code: StatusCode, body: impl Into<Body>) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = code;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
