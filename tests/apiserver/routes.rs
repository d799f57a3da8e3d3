//! HTTP front: one fallback handler parses every path the way kube-apiserver's REST mapping
//! does (`/api/v1/...`, `/apis/{group}/{version}/...`, optional `/namespaces/{ns}/`, object name,
//! subresource), derives the RBAC verb, records the request, applies injected faults and then
//! dispatches to [`super::handlers`]. Non-resource paths (`/version`, discovery, health) are
//! answered here too.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{Value, json};

use super::error::{ApiError, json_response};
use super::resources::{self, RESOURCES};
use super::{RequestRecord, Shared, handlers};

/// A resource request after path parsing.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub res: usize,
    /// From `/namespaces/{ns}/`; `None` for cluster-scoped and all-namespace requests.
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// "" when the request is for the object or collection itself.
    pub sub: String,
}

/// Entry point for every request.
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if shared.closed.load(Ordering::SeqCst) {
        return ApiError::ShuttingDown.into_response();
    }
    if let Some(resp) = non_resource(uri.path()) {
        return resp;
    }
    match serve(&shared, &method, &uri, headers, body).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn serve(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let target = parse_path(uri.path()).ok_or(ApiError::UnknownPath)?;
    let query: HashMap<String, String> =
        Query::try_from_uri(uri).map(|Query(q)| q).map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))?;
    let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let verb = verb(method, &target, watch)?;
    let info = &RESOURCES[target.res];
    shared.requests.lock().push(RequestRecord {
        verb: verb.to_string(),
        group: info.group.to_string(),
        resource: info.plural.to_string(),
        subresource: target.sub.clone(),
        namespace: target.namespace.clone().unwrap_or_default(),
    });
    let verdict = shared.faults.check(verb, info.plural, &target.sub, target.name.as_deref().unwrap_or_default());
    if let Some(delay) = verdict.delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(err) = verdict.error {
        return Err(err);
    }
    let req = handlers::Request { target, query, headers, body };
    match verb {
        "get" => handlers::get(shared, &req),
        "list" => handlers::list(shared, &req),
        "watch" => handlers::watch(shared, &req),
        "create" => handlers::create(shared, &req),
        "update" => handlers::update(shared, &req),
        "patch" => handlers::patch(shared, &req),
        "delete" => handlers::delete(shared, &req),
        _ => handlers::delete_collection(shared, &req),
    }
}

/// The RBAC verb of a request, or 405 for a method the path does not take.
fn verb(method: &Method, target: &Target, watch: bool) -> Result<&'static str, ApiError> {
    let info = &RESOURCES[target.res];
    let named = target.name.is_some();
    let scoped = target.namespace.is_some() || !info.namespaced;
    let verb = match *method {
        Method::GET if named => "get",
        Method::GET if watch => "watch",
        Method::GET => "list",
        Method::POST if !named => "create",
        Method::POST if matches!(target.sub.as_str(), "binding" | "eviction") => "create",
        Method::PUT if named => "update",
        Method::PATCH if named => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => return Err(ApiError::MethodNotAllowed),
    };
    // Only reads of a namespaced collection may span all namespaces.
    if !scoped && !matches!(verb, "list" | "watch") {
        return Err(ApiError::UnknownPath);
    }
    Ok(verb)
}

/// Parses a resource path; `None` for anything that is not one.
pub(crate) fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, ..] if resources::by_path(group, version, plural).is_some() => {
            (Some(ns.to_string()), &rest[2..])
        }
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [plural] => (*plural, None, ""),
        [plural, name] => (*plural, Some(name.to_string()), ""),
        [plural, name, sub] => (*plural, Some(name.to_string()), *sub),
        _ => return None,
    };
    let res = resources::by_path(group, version, plural)?;
    let info = &RESOURCES[res];
    let scope_ok = info.namespaced || namespace.is_none();
    let sub_ok = sub.is_empty() || info.subresources.contains(&sub);
    if !scope_ok || !sub_ok || name.as_deref() == Some("") {
        return None;
    }
    Some(Target { res, namespace, name, sub: sub.to_string() })
}

/// `/version`, health endpoints and discovery documents.
fn non_resource(path: &str) -> Option<Response> {
    let path = path.trim_end_matches('/');
    let body = match path {
        "/version" => json!({
            "major": "1", "minor": "37", "gitVersion": "v1.37.0",
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25.0", "compiler": "gc",
            "platform": "linux/amd64",
        }),
        "/healthz" | "/livez" | "/readyz" => return Some(text_response("ok")),
        "/api" => json!({ "kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [] }),
        "/apis" => api_group_list(),
        _ => return resource_list(path).map(|v| json_response(StatusCode::OK, v.to_string())),
    };
    Some(json_response(StatusCode::OK, body.to_string()))
}

fn text_response(text: &'static str) -> Response {
    let mut resp = Response::new(text.into());
    *resp.status_mut() = StatusCode::OK;
    resp
}

fn api_group_list() -> Value {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for (group, version) in resources::group_versions().into_iter().filter(|(g, _)| !g.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, versions)) => versions.push(version),
            None => groups.push((group, vec![version])),
        }
    }
    let groups: Vec<Value> = groups
        .iter()
        .map(|(g, versions)| {
            let vs: Vec<Value> =
                versions.iter().map(|v| json!({ "groupVersion": format!("{g}/{v}"), "version": v })).collect();
            json!({ "name": g, "versions": vs, "preferredVersion": vs[0] })
        })
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `APIResourceList` for `/api/v1` or `/apis/{group}/{version}`.
fn resource_list(path: &str) -> Option<Value> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version) = match segs.as_slice() {
        ["api", v] => ("", *v),
        ["apis", g, v] => (*g, *v),
        _ => return None,
    };
    let verbs = json!(["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]);
    let mut list = Vec::new();
    for r in RESOURCES.iter().filter(|r| r.group == group && r.version == version) {
        list.push(json!({ "name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced, "kind": r.kind, "verbs": verbs }));
        for sub in r.subresources {
            list.push(json!({ "name": format!("{}/{sub}", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update", "create"] }));
        }
    }
    if list.is_empty() {
        return None;
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_like_the_rest_mapping() {
        let t = parse_path("/api/v1/namespaces/ns1/pods/p1/binding").expect("binding path");
        assert_eq!(
            (RESOURCES[t.res].plural, t.namespace.as_deref(), t.name.as_deref(), t.sub.as_str()),
            ("pods", Some("ns1"), Some("p1"), "binding")
        );
        let t = parse_path("/api/v1/namespaces/ns1/status").expect("namespace status");
        assert_eq!(
            (RESOURCES[t.res].plural, t.namespace, t.name.as_deref(), t.sub.as_str()),
            ("namespaces", None, Some("ns1"), "status")
        );
        let t = parse_path("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases").expect("leases");
        assert_eq!((RESOURCES[t.res].plural, t.namespace.as_deref(), t.name), ("leases", Some("kube-system"), None));
        assert!(parse_path("/api/v1/namespaces/ns1/nodes/n1").is_none(), "nodes are cluster-scoped");
        assert!(parse_path("/api/v1/pods/p/bogus").is_none());
        assert!(parse_path("/apis/nope/v1/things").is_none());
    }
}
