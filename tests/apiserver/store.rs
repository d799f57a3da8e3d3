//! The object store: what etcd plus the watch cache are to kube-apiserver.
//!
//! One mutex guards everything, as one etcd revision counter orders every write: each write
//! bumps the global resourceVersion, stamps it on the object, replaces the object's immutable
//! [`Snapshot`] (serialized JSON + selector facts, shared by lists, history and watchers) and
//! appends an [`Event`] to its resource's bounded history. Watchers never receive pushed copies:
//! they read the history from their own cursor and are woken through a per-resource
//! `tokio::sync::watch` channel, so a slow watcher costs writers nothing and a watcher that falls
//! behind the history is ended (upstream closes unresponsive watchers the same way) and must
//! resume or relist. Objects are kept in a `BTreeMap` ordered by (namespace, name), the key
//! order of etcd, which list pagination resumes from.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use axum::body::Bytes;
use parking_lot::{Mutex, MutexGuard};
use serde_json::Value;
use tokio::sync::watch;

use super::error::ApiError;
use super::obj;
use super::resources::{RESOURCES, ResourceInfo};

/// (namespace, name); namespace is "" for cluster-scoped objects.
pub(crate) type Key = (String, String);

/// One immutable version of an object, shared by the store, the history and watchers.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub rv: u64,
    pub json: Bytes,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Values of the resource's extra field-selector labels, in [`ResourceInfo::fields`] order.
    pub fields: Vec<String>,
}

impl Snapshot {
    pub(crate) fn new(info: &ResourceInfo, rv: u64, value: &Value) -> Snapshot {
        let json = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        let labels = value
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
            .unwrap_or_default();
        Snapshot {
            rv,
            json: Bytes::from(json),
            namespace: obj::str_at(value, "/metadata/namespace").unwrap_or_default().to_string(),
            name: obj::str_at(value, "/metadata/name").unwrap_or_default().to_string(),
            labels,
            fields: info.fields.iter().map(|f| obj::field_string(value, f)).collect(),
        }
    }
}

/// What happened to an object at one resourceVersion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One entry of a resource's watch history.
#[derive(Debug)]
pub(crate) struct Event {
    pub rv: u64,
    pub kind: EventType,
    /// The object after the write (for a delete: the last state, stamped with the delete's RV).
    pub cur: Arc<Snapshot>,
    /// The object before the write; lets filtered watchers turn "stopped matching" into DELETED.
    pub prev: Option<Arc<Snapshot>>,
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub value: Value,
    pub snap: Arc<Snapshot>,
}

#[derive(Debug)]
pub(crate) struct ResourceState {
    pub objects: BTreeMap<Key, Entry>,
    pub history: VecDeque<Arc<Event>>,
    /// Every event with rv > trimmed_rv is still in `history`.
    pub trimmed_rv: u64,
    pub notify: watch::Sender<u64>,
}

/// Everything behind the store's mutex.
#[derive(Debug)]
pub(crate) struct State {
    pub rv: u64,
    /// Watches may not resume from before this RV (set by [`Store::compact`]).
    pub compacted_rv: u64,
    pub uid_seed: u64,
    pub seq: u64,
    pub history_cap: usize,
    pub resources: Vec<ResourceState>,
}

impl State {
    /// Stamps the next resourceVersion on `value`, stores (or removes) it and records the event.
    pub(crate) fn write(&mut self, res: usize, mut value: Value, kind: EventType) -> Arc<Snapshot> {
        self.rv += 1;
        let rv = self.rv;
        obj::set(&mut value, &["metadata", "resourceVersion"], Value::String(rv.to_string()));
        let snap = Arc::new(Snapshot::new(&RESOURCES[res], rv, &value));
        let cap = self.history_cap;
        let r = &mut self.resources[res];
        let key = (snap.namespace.clone(), snap.name.clone());
        let prev = match kind {
            EventType::Deleted => r.objects.remove(&key),
            _ => r.objects.insert(key, Entry { value, snap: snap.clone() }),
        };
        r.history.push_back(Arc::new(Event { rv, kind, cur: snap.clone(), prev: prev.map(|e| e.snap) }));
        while r.history.len() > cap {
            if let Some(old) = r.history.pop_front() {
                r.trimmed_rv = old.rv;
            }
        }
        r.notify.send_replace(rv);
        snap
    }

    pub(crate) fn entry(&self, res: usize, ns: &str, name: &str) -> Option<&Entry> {
        self.resources[res].objects.get(&(ns.to_string(), name.to_string()))
    }

    /// A fresh uid, unique per server and unlikely to repeat across servers.
    pub(crate) fn next_uid(&mut self) -> String {
        self.seq += 1;
        let s = self.seq;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            self.uid_seed as u32,
            (self.uid_seed >> 32) as u16,
            (s >> 48) & 0xfff,
            (s >> 36) & 0xfff,
            s & 0xffff_ffff_ffff
        )
    }

    /// Deletes every object of `namespace` (namespace deletion, done at once here).
    pub(crate) fn delete_namespace_contents(&mut self, namespace: &str) {
        let namespaced = RESOURCES.iter().enumerate().filter(|(_, r)| r.namespaced).map(|(i, _)| i);
        for res in namespaced {
            let keys: Vec<Key> = self.resources[res]
                .objects
                .range((namespace.to_string(), String::new())..)
                .take_while(|(k, _)| k.0 == namespace)
                .map(|(k, _)| k.clone())
                .collect();
            for key in keys {
                if let Some(entry) = self.resources[res].objects.get(&key) {
                    let value = entry.value.clone();
                    self.write(res, value, EventType::Deleted);
                }
            }
        }
    }
}

/// Handle on the server's objects; cheap to clone, shared with the HTTP handlers.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("resource_version", &self.resource_version()).finish()
    }
}

impl Store {
    pub(crate) fn new(history_cap: usize) -> Store {
        let nanos = jiff::Timestamp::now().as_nanosecond() as u64;
        let resources = RESOURCES
            .iter()
            .map(|_| ResourceState {
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                trimmed_rv: 0,
                notify: watch::channel(0).0,
            })
            .collect();
        let state =
            State { rv: 0, compacted_rv: 0, uid_seed: nanos, seq: 0, history_cap: history_cap.max(1), resources };
        Store { inner: Arc::new(Mutex::new(state)) }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock()
    }

    /// The current global resourceVersion (the RV of the latest write).
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Drops watch-event history older than now, so a watch resumed from an older
    /// resourceVersion gets 410 Gone ("too old resource version") and the client must relist.
    /// Open watches that have already delivered everything keep running.
    pub fn compact(&self) {
        let mut st = self.lock();
        let rv = st.rv;
        st.compacted_rv = rv;
        for r in &mut st.resources {
            r.history.clear();
            r.trimmed_rv = rv;
        }
    }

    /// Reads (and clones) one object.
    pub(crate) fn get_snapshot(&self, res: usize, ns: &str, name: &str) -> Result<Arc<Snapshot>, ApiError> {
        let st = self.lock();
        st.entry(res, ns, name).map(|e| e.snap.clone()).ok_or_else(|| ApiError::not_found(&RESOURCES[res], name))
    }

    /// Read-modify-write of one object under the lock: `f` maps the stored object to its new
    /// state (or refuses); the result is written unless it equals the stored object (no-op
    /// updates do not bump the resourceVersion upstream either).
    pub(crate) fn modify(
        &self,
        res: usize,
        ns: &str,
        name: &str,
        f: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Arc<Snapshot>, ApiError> {
        let mut st = self.lock();
        let info = &RESOURCES[res];
        let entry = st.entry(res, ns, name).ok_or_else(|| ApiError::not_found(info, name))?;
        let mut new = f(&entry.value)?;
        super::semantics::prepare_update(info, &entry.value, &mut new)?;
        if new == entry.value {
            return Ok(entry.snap.clone());
        }
        let kind = if super::semantics::finalized(res, &new) { EventType::Deleted } else { EventType::Modified };
        Ok(st.write(res, new, kind))
    }
}
