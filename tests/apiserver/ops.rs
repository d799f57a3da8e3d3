//! Store operations behind the verbs: create, delete, paginated list, and the public
//! [`Store`] methods tests use to act "as another client" without going through HTTP.
//!
//! List pages resume after the last key returned (keys ordered by namespace/name, like etcd)
//! and every page reports the resourceVersion of the first one, so a client that watches from
//! it after the last page replays whatever changed while it paged: it may see an object twice,
//! never miss a change.

use std::ops::Bound;
use std::sync::Arc;

use serde_json::{Value, json};

use super::error::ApiError;
use super::obj;
use super::resources::{self, NAMESPACES, RESOURCES};
use super::select::Selector;
use super::semantics::{self, Deletion};
use super::store::{EventType, Key, Snapshot, Store};

/// The parts of `DeleteOptions` the server honours.
#[derive(Debug, Default, Clone)]
pub(crate) struct DeleteOpts {
    pub grace: Option<i64>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

impl DeleteOpts {
    /// Reads a DeleteOptions body (empty body = defaults).
    pub(crate) fn from_body(body: &[u8]) -> Result<DeleteOpts, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(DeleteOpts::default());
        }
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("DeleteOptions body is not valid JSON: {e}")))?;
        Ok(DeleteOpts {
            grace: v.get("gracePeriodSeconds").and_then(Value::as_i64),
            uid: obj::str_at(&v, "/preconditions/uid").map(str::to_string),
            resource_version: obj::str_at(&v, "/preconditions/resourceVersion").map(str::to_string),
        })
    }
}

/// One page of a list.
#[derive(Debug)]
pub(crate) struct ListPage {
    pub resource_version: u64,
    pub items: Vec<Arc<Snapshot>>,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

impl Store {
    pub(crate) fn create_in(&self, res: usize, mut value: Value, raw: bool) -> Result<Arc<Snapshot>, ApiError> {
        let mut st = self.lock();
        semantics::prepare_create(&mut st, res, &mut value, raw)?;
        let ns = obj::str_at(&value, "/metadata/namespace").unwrap_or_default();
        let name = obj::str_at(&value, "/metadata/name").unwrap_or_default();
        if st.entry(res, ns, name).is_some() {
            return Err(ApiError::AlreadyExists { resource: RESOURCES[res].qualified(), name: name.to_string() });
        }
        Ok(st.write(res, value, EventType::Added))
    }

    pub(crate) fn delete_in(
        &self,
        res: usize,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<Arc<Snapshot>, ApiError> {
        let info = &RESOURCES[res];
        let mut st = self.lock();
        let entry = st.entry(res, ns, name).ok_or_else(|| ApiError::not_found(info, name))?;
        let uid = obj::str_at(&entry.value, "/metadata/uid").unwrap_or_default();
        if let Some(want) = opts.uid.as_deref().filter(|u| *u != uid) {
            let detail = format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}");
            return Err(ApiError::conflict(info, name, detail));
        }
        if let Some(want) = opts.resource_version.as_deref().filter(|rv| rv.parse() != Ok(entry.snap.rv)) {
            let detail = format!(
                "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {}",
                entry.snap.rv
            );
            return Err(ApiError::conflict(info, name, detail));
        }
        match semantics::deletion(res, &entry.value, opts.grace) {
            Deletion::Unchanged => Ok(entry.snap.clone()),
            Deletion::Mark { grace } => {
                let marked = semantics::mark_deleted(&entry.value, grace);
                Ok(st.write(res, marked, EventType::Modified))
            }
            Deletion::Now => {
                let value = entry.value.clone();
                if res == NAMESPACES {
                    st.delete_namespace_contents(name);
                }
                Ok(st.write(res, value, EventType::Deleted))
            }
        }
    }

    /// Matching objects in key order, starting after the `continue` token's key.
    pub(crate) fn list_in(
        &self,
        res: usize,
        namespace: Option<&str>,
        sel: &Selector,
        limit: Option<usize>,
        cont: Option<&str>,
    ) -> Result<ListPage, ApiError> {
        let st = self.lock();
        let (first_rv, start) = match cont {
            Some(token) => {
                let (rv, key) = decode_token(token)?;
                (rv, Bound::Excluded(key))
            }
            None => (st.rv, Bound::Included((namespace.unwrap_or_default().to_string(), String::new()))),
        };
        let mut matching = st.resources[res]
            .objects
            .range((start, Bound::Unbounded))
            .take_while(|(k, _)| namespace.is_none_or(|ns| k.0 == ns))
            .filter(|(_, e)| sel.matches(&e.snap));
        let limit = limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let items: Vec<Arc<Snapshot>> = matching.by_ref().take(limit).map(|(_, e)| e.snap.clone()).collect();
        let rest = if items.len() == limit { matching.count() } else { 0 };
        let continue_token = match items.last() {
            Some(last) if rest > 0 => Some(encode_token(first_rv, &(last.namespace.clone(), last.name.clone()))),
            _ => None,
        };
        // Upstream only knows the count when no selector filters the remaining keys.
        let remaining = continue_token.as_ref().filter(|_| sel.is_empty()).map(|_| rest);
        Ok(ListPage { resource_version: first_rv, items, continue_token, remaining })
    }

    /// Creates an object directly, with the same defaults and checks as a POST (as another
    /// client would): assigns uid, creationTimestamp, resourceVersion and emits ADDED. A
    /// namespaced object without `metadata.namespace` goes to `default`. Returns the stored object.
    pub fn create(&self, obj: Value) -> Result<Value, String> {
        let (res, obj) = locate(obj)?;
        self.create_in(res, obj, false).map(|s| to_value(&s)).map_err(|e| e.to_string())
    }

    /// Inserts an object without validation or admission (a malformed object for
    /// watch-robustness tests); it still gets uid and resourceVersion so watchers see it.
    pub fn create_raw(&self, obj: Value) -> Result<Value, String> {
        let (res, obj) = locate(obj)?;
        self.create_in(res, obj, true).map(|s| to_value(&s)).map_err(|e| e.to_string())
    }

    /// Typed form of [`Store::create`], e.g. `store.create_typed(&Node { .. })`.
    pub fn create_typed<K>(&self, obj: &K) -> Result<Value, String>
    where
        K: kube::Resource + serde::Serialize,
        K::DynamicType: Default,
    {
        let mut value = serde_json::to_value(obj).map_err(|e| format!("cannot serialize object: {e}"))?;
        let dt = K::DynamicType::default();
        obj::set(&mut value, &["apiVersion"], json!(K::api_version(&dt)));
        obj::set(&mut value, &["kind"], json!(K::kind(&dt)));
        self.create(value)
    }

    /// Replaces an object as given, status included (like a controller writing both the object
    /// and its status). 409 (as `Err`) when it carries a stale resourceVersion; no check when
    /// the resourceVersion is absent. Emits MODIFIED unless nothing changed.
    pub fn update(&self, obj: Value) -> Result<Value, String> {
        let (res, obj) = locate(obj)?;
        let ns = obj::str_at(&obj, "/metadata/namespace").unwrap_or_default().to_string();
        let name = obj::str_at(&obj, "/metadata/name").unwrap_or_default().to_string();
        self.modify(res, &ns, &name, |_| Ok(obj)).map(|s| to_value(&s)).map_err(|e| e.to_string())
    }

    /// Deletes an object at once, whatever its grace period or finalizers (a namespace takes its
    /// contents with it). False when it does not exist.
    pub fn delete(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> bool {
        let Some(res) = resources::by_kind(api_version, kind) else { return false };
        let ns = namespace.unwrap_or_default();
        let mut st = self.lock();
        let Some(value) = st.entry(res, ns, name).map(|e| e.value.clone()) else { return false };
        if res == NAMESPACES {
            st.delete_namespace_contents(name);
        }
        st.write(res, value, EventType::Deleted);
        true
    }

    /// The stored object, if any.
    pub fn get(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let res = resources::by_kind(api_version, kind)?;
        self.lock().entry(res, namespace.unwrap_or_default(), name).map(|e| e.value.clone())
    }

    /// Every stored object of the kind, all namespaces, in key order.
    pub fn list(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let Some(res) = resources::by_kind(api_version, kind) else { return Vec::new() };
        self.lock().resources[res].objects.values().map(|e| e.value.clone()).collect()
    }
}

/// Finds the resource of a full object and defaults its namespace.
fn locate(mut obj: Value) -> Result<(usize, Value), String> {
    let api_version = obj::str_at(&obj, "/apiVersion").unwrap_or_default();
    let kind = obj::str_at(&obj, "/kind").unwrap_or_default();
    let res = resources::by_kind(api_version, kind)
        .ok_or_else(|| format!("no resource serves apiVersion {api_version:?} kind {kind:?}"))?;
    if RESOURCES[res].namespaced && obj::str_at(&obj, "/metadata/namespace").is_none_or(str::is_empty) {
        obj::set(&mut obj, &["metadata", "namespace"], json!("default"));
    }
    Ok((res, obj))
}

pub(crate) fn to_value(snap: &Snapshot) -> Value {
    serde_json::from_slice(&snap.json).unwrap_or(Value::Null)
}

/// Opaque continue token: hex of "rv/namespace/name" (names cannot contain '/').
fn encode_token(rv: u64, key: &Key) -> String {
    format!("{rv}/{}/{}", key.0, key.1).bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(token: &str) -> Result<(u64, Key), ApiError> {
    let bad = || ApiError::BadRequest(format!("continue key is not valid: {token:?}"));
    let bytes: Option<Vec<u8>> =
        (0..token.len()).step_by(2).map(|i| token.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect();
    let text = String::from_utf8(bytes.ok_or_else(bad)?).map_err(|_| bad())?;
    let mut parts = text.splitn(3, '/');
    let rv = parts.next().and_then(|r| r.parse().ok()).ok_or_else(bad)?;
    let ns = parts.next().ok_or_else(bad)?.to_string();
    let name = parts.next().ok_or_else(bad)?.to_string();
    Ok((rv, (ns, name)))
}
