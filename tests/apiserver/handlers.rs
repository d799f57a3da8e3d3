//! One handler per verb (plus the `binding` and `eviction` subresources), translating HTTP
//! bodies and query parameters into store operations and store results into kube-apiserver's
//! responses: the object as JSON (201 on create), `XList` documents with list metadata, chunked
//! watch streams, and `Status` objects for subresource POSTs and errors.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::response::Response;
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use super::Shared;
use super::error::{ApiError, json_response};
use super::obj;
use super::ops::{DeleteOpts, ListPage};
use super::patch::{self, PatchType};
use super::resources::{PODS, RESOURCES, ResourceInfo};
use super::routes::Target;
use super::select::Selector;
use super::semantics;
use super::store::Snapshot;
use super::watch::{WatchSpec, watch_body};

/// A parsed resource request.
#[derive(Debug)]
pub(crate) struct Request {
    pub target: Target,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Request {
    fn info(&self) -> &'static ResourceInfo {
        &RESOURCES[self.target.res]
    }
    fn ns(&self) -> &str {
        self.target.namespace.as_deref().unwrap_or_default()
    }
    fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or_default()
    }
    fn param(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }
    fn selector(&self) -> Result<Selector, ApiError> {
        Selector::parse(self.info(), self.param("labelSelector"), self.param("fieldSelector"))
    }
    fn json_body(&self) -> Result<Value, ApiError> {
        let v: Value = serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::BadRequest(format!("request body is not a valid JSON object: {e}")))?;
        if v.is_object() { Ok(v) } else { Err(ApiError::BadRequest("request body must be a JSON object".into())) }
    }
    fn reject_dry_run(&self) -> Result<(), ApiError> {
        match self.param("dryRun") {
            Some(_) => Err(ApiError::BadRequest("dryRun is not supported by the test API server".into())),
            None => Ok(()),
        }
    }
}

fn object_response(code: StatusCode, snap: &Snapshot) -> Response {
    json_response(code, snap.json.clone())
}

fn success_status(code: u16) -> Response {
    let body = json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code });
    json_response(StatusCode::from_u16(code).unwrap_or(StatusCode::OK), body.to_string())
}

pub(crate) fn get(shared: &Shared, req: &Request) -> Result<Response, ApiError> {
    let snap = shared.store.get_snapshot(req.target.res, req.ns(), req.name())?;
    Ok(object_response(StatusCode::OK, &snap))
}

pub(crate) fn list(shared: &Shared, req: &Request) -> Result<Response, ApiError> {
    let limit = match req.param("limit") {
        Some(l) => Some(l.parse::<usize>().map_err(|_| ApiError::BadRequest(format!("invalid limit {l:?}")))?),
        None => None,
    };
    let page = shared.store.list_in(
        req.target.res,
        req.target.namespace.as_deref(),
        &req.selector()?,
        limit,
        req.param("continue"),
    )?;
    Ok(json_response(StatusCode::OK, render_list(req.info(), &page)))
}

/// `{"kind":"PodList",...,"items":[...]}` assembled from the stored JSON without re-serializing.
fn render_list(info: &ResourceInfo, page: &ListPage) -> Vec<u8> {
    let mut meta = json!({ "resourceVersion": page.resource_version.to_string() });
    if let Some(token) = &page.continue_token {
        obj::set(&mut meta, &["continue"], json!(token));
    }
    if let Some(n) = page.remaining {
        obj::set(&mut meta, &["remainingItemCount"], json!(n));
    }
    let head = json!({ "kind": format!("{}List", info.kind), "apiVersion": info.api_version(), "metadata": meta });
    let mut out = head.to_string().into_bytes();
    out.pop(); // the closing '}'
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&item.json);
    }
    out.extend_from_slice(b"]}");
    out
}

pub(crate) fn watch(shared: &Shared, req: &Request) -> Result<Response, ApiError> {
    let initial_events = req.param("sendInitialEvents") == Some("true");
    let from = match req.param("resourceVersion") {
        _ if initial_events => None,
        None | Some("0") => None,
        Some(rv) => {
            Some(rv.parse::<u64>().map_err(|_| ApiError::BadRequest(format!("invalid resource version: {rv:?}")))?)
        }
    };
    let timeout = match req.param("timeoutSeconds") {
        Some(t) => Some(Duration::from_secs(
            t.parse().map_err(|_| ApiError::BadRequest(format!("invalid timeoutSeconds {t:?}")))?,
        )),
        None => None,
    };
    let spec = WatchSpec {
        res: req.target.res,
        namespace: req.target.namespace.clone(),
        selector: req.selector()?,
        from,
        bookmarks: req.param("allowWatchBookmarks") == Some("true"),
        initial_events_end: initial_events,
        timeout,
        bookmark_interval: shared.opts.bookmark_interval,
    };
    let body = watch_body(shared.store.clone(), spec, shared.faults.watch_drops());
    Ok(json_response(StatusCode::OK, body))
}

pub(crate) fn create(shared: &Shared, req: &Request) -> Result<Response, ApiError> {
    req.reject_dry_run()?;
    match req.target.sub.as_str() {
        "binding" => return bind(shared, req),
        "eviction" => return evict(shared, req),
        _ => {}
    }
    let mut body = req.json_body()?;
    check_type(req.info(), &body)?;
    if req.info().namespaced {
        let body_ns = obj::str_at(&body, "/metadata/namespace").unwrap_or_default();
        if !body_ns.is_empty() && body_ns != req.ns() {
            return Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request".into(),
            ));
        }
        obj::set(&mut body, &["metadata", "namespace"], json!(req.ns()));
    }
    let snap = shared.store.create_in(req.target.res, body, false)?;
    Ok(object_response(StatusCode::CREATED, &snap))
}

/// 400 when the body declares another kind or apiVersion than the path serves.
fn check_type(info: &ResourceInfo, body: &Value) -> Result<(), ApiError> {
    let kind = obj::str_at(body, "/kind").unwrap_or(info.kind);
    let api_version = obj::str_at(body, "/apiVersion").unwrap_or_default();
    if kind != info.kind || (!api_version.is_empty() && api_version != info.api_version()) {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({}) or kind {kind} is not {}",
            info.api_version(),
            info.kind
        )));
    }
    Ok(())
}

/// Scopes a proposed new object to what the endpoint may change: `/status` takes only the
/// status (keeping the proposed resourceVersion as precondition); the main resource of a type
/// with a status subresource keeps the stored status.
fn scope(info: &ResourceInfo, sub: &str, old: &Value, mut proposed: Value) -> Value {
    if sub == "status" {
        let mut new = old.clone();
        match proposed.get("status") {
            Some(s) => obj::set(&mut new, &["status"], s.clone()),
            None => obj::remove(&mut new, &["status"]).is_some(),
        };
        let rv = proposed.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null);
        obj::set(&mut new, &["metadata", "resourceVersion"], rv);
        return new;
    }
    if info.has_status() {
        match old.get("status") {
            Some(s) => obj::set(&mut proposed, &["status"], s.clone()),
            None => obj::remove(&mut proposed, &["status"]).is_some(),
        };
    }
    proposed
}

pub(crate) fn update(shared: &Shared, req: &Request) -> Result<Response, ApiError> {
    req.reject_dry_run()?;
    let body = req.json_body()?;
    check_type(req.info(), &body)?;
    let body_name = obj::str_at(&body, "/metadata/name").unwrap_or_default();
    if body_name != req.name() {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({})",
            req.name()
        )));
    }
    let (info, sub) = (req.info(), req.target.sub.as_str());
    let snap = shared.store.modify(req.target.res, req.ns(), req.name(), |old| Ok(scope(info, sub, old, body)))?;
    Ok(object_response(StatusCode::OK, &snap))
}

pub(crate) fn patch(shared: &Shared, req: &Request) -> Result<Response, ApiError> {
    req.reject_dry_run()?;
    let content_type = req.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let kind = PatchType::from_content_type(content_type)?;
    let (info, sub) = (req.info(), req.target.sub.as_str());
    let result = shared.store.modify(req.target.res, req.ns(), req.name(), |old| {
        let patched = patch::apply(kind, old, &req.body)?;
        Ok(scope(info, sub, old, patched))
    });
    match result {
        Ok(snap) => Ok(object_response(StatusCode::OK, &snap)),
        Err(ApiError::NotFound { .. }) if kind == PatchType::Apply && sub.is_empty() => {
            let mut body = patch::parse(&req.body)?;
            obj::set(&mut body, &["metadata", "name"], json!(req.name()));
            if info.namespaced {
                obj::set(&mut body, &["metadata", "namespace"], json!(req.ns()));
            }
            let snap = shared.store.create_in(req.target.res, body, false)?;
            Ok(object_response(StatusCode::CREATED, &snap))
        }
        Err(e) => Err(e),
    }
}

pub(crate) fn delete(shared: &Shared, req: &Request) -> Result<Response, ApiError> {
    req.reject_dry_run()?;
    let opts = DeleteOpts::from_body(&req.body)?;
    let snap = shared.store.delete_in(req.target.res, req.ns(), req.name(), &opts)?;
    Ok(object_response(StatusCode::OK, &snap))
}

pub(crate) fn delete_collection(shared: &Shared, req: &Request) -> Result<Response, ApiError> {
    req.reject_dry_run()?;
    let opts = DeleteOpts::from_body(&req.body)?;
    let res = req.target.res;
    let page = shared.store.list_in(res, req.target.namespace.as_deref(), &req.selector()?, None, None)?;
    let mut deleted = Vec::new();
    for item in &page.items {
        match shared.store.delete_in(res, &item.namespace, &item.name, &opts) {
            Ok(snap) => deleted.push(snap),
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let out = ListPage {
        resource_version: shared.store.resource_version(),
        items: deleted,
        continue_token: None,
        remaining: None,
    };
    Ok(json_response(StatusCode::OK, render_list(req.info(), &out)))
}

/// POST pods/{name}/binding: assigns the pod to `target.name` once.
fn bind(shared: &Shared, req: &Request) -> Result<Response, ApiError> {
    let binding = req.json_body()?;
    let body_name = obj::str_at(&binding, "/metadata/name").unwrap_or(req.name());
    if body_name != req.name() {
        return Err(ApiError::BadRequest(format!(
            "name in URL ({}) does not match name in Binding object ({body_name})",
            req.name()
        )));
    }
    let snap = shared.store.modify(PODS, req.ns(), req.name(), |pod| semantics::bind(pod, &binding))?;
    let node = obj::str_at(&binding, "/target/name").unwrap_or_default().to_string();
    shared.bindings.lock().push((snap.namespace.clone(), snap.name.clone(), node));
    Ok(success_status(201))
}

/// POST pods/{name}/eviction: deletes the pod with the Eviction's DeleteOptions (no PDB check).
fn evict(shared: &Shared, req: &Request) -> Result<Response, ApiError> {
    let eviction = req.json_body()?;
    let opts = match eviction.get("deleteOptions") {
        Some(o) => DeleteOpts::from_body(o.to_string().as_bytes())?,
        None => DeleteOpts::default(),
    };
    shared.store.delete_in(PODS, req.ns(), req.name(), &opts)?;
    Ok(success_status(201))
}
