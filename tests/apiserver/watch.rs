//! Watch streams: newline-delimited `{"type":..,"object":..}` events over a chunked body.
//!
//! A watch from resourceVersion "0" / unset first sends synthetic ADDED events for the current
//! objects (optionally closed by the `k8s.io/initial-events-end` BOOKMARK when
//! `sendInitialEvents=true`), then follows the resource's history from the RV it listed at.
//! A watch from an RV older than the retained history gets one ERROR event (Status 410
//! Expired, "too old resource version") and the stream ends, so kube-runtime's watcher relists.
//! Each stream keeps a cursor into the history, is woken by the resource's notify channel, and
//! serializes nothing itself except the event envelope: object JSON is shared with the store.
//! The stream ends on `timeoutSeconds`, on [`super::Faults::drop_watches`], at shutdown, or when
//! it fell so far behind that the history no longer holds its next event (the client then
//! resumes from its last RV, and gets 410 if that is too old, as upstream).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use super::obj;
use super::resources::RESOURCES;
use super::select::Selector;
use super::store::{Event, EventType, Snapshot, Store};

/// Events read from the history per lock acquisition / chunk.
const MAX_BATCH: usize = 1000;
/// Synthetic ADDED events per chunk of the initial state.
const INITIAL_BATCH: usize = 500;

/// What the client asked to watch.
#[derive(Debug)]
pub(crate) struct WatchSpec {
    pub res: usize,
    pub namespace: Option<String>,
    pub selector: Selector,
    /// `None`: start with the current state as ADDED events; `Some(rv)`: events after rv.
    pub from: Option<u64>,
    pub bookmarks: bool,
    /// `sendInitialEvents=true`: end the initial state with the initial-events-end bookmark.
    pub initial_events_end: bool,
    pub timeout: Option<Duration>,
    pub bookmark_interval: Duration,
}

struct Watcher {
    store: Store,
    spec: WatchSpec,
    cursor: u64,
    initial: std::vec::IntoIter<Arc<Snapshot>>,
    send_initial_end: bool,
    gone: Option<Bytes>,
    finished: bool,
    notify: watch::Receiver<u64>,
    drops: watch::Receiver<u64>,
    deadline: Option<Instant>,
    next_bookmark: Instant,
}

/// Starts a watch: the body streams until one of the end conditions in the module docs.
pub(crate) fn watch_body(store: Store, spec: WatchSpec, drops: watch::Receiver<u64>) -> Body {
    let (cursor, initial, gone, notify) = {
        let st = store.lock();
        let r = &st.resources[spec.res];
        let floor = r.trimmed_rv.max(st.compacted_rv);
        let gone = spec.from.filter(|from| *from < floor).map(|from| expired_line(from, floor + 1));
        let initial: Vec<Arc<Snapshot>> = match spec.from {
            Some(_) => Vec::new(),
            None => r.objects.values().map(|e| e.snap.clone()).filter(|s| passes(&spec, s)).collect(),
        };
        (spec.from.unwrap_or(st.rv), initial, gone, r.notify.subscribe())
    };
    let now = Instant::now();
    let watcher = Watcher {
        store,
        cursor,
        initial: initial.into_iter(),
        send_initial_end: spec.initial_events_end,
        gone,
        finished: false,
        notify,
        drops,
        deadline: spec.timeout.map(|t| now + t),
        next_bookmark: now + spec.bookmark_interval,
        spec,
    };
    Body::from_stream(futures::stream::unfold(watcher, |mut w| async move {
        w.next_chunk().await.map(|chunk| (Ok::<Bytes, Infallible>(chunk), w))
    }))
}

impl Watcher {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.finished || self.drops.has_changed().unwrap_or(true) {
            return None;
        }
        if let Some(line) = self.gone.take() {
            self.finished = true;
            return Some(line);
        }
        let mut buf = Vec::new();
        for snap in self.initial.by_ref().take(INITIAL_BATCH) {
            push_line(&mut buf, "ADDED", &snap.json);
        }
        if !buf.is_empty() {
            return Some(Bytes::from(buf));
        }
        if self.send_initial_end {
            self.send_initial_end = false;
            return Some(self.bookmark(true));
        }
        loop {
            // A drop requested before an event arrived must win over delivering that event.
            let dropped = self.drops.has_changed().unwrap_or(true);
            if dropped || self.deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            self.notify.borrow_and_update();
            let chunk = self.read()?;
            if !chunk.is_empty() {
                return Some(chunk);
            }
            let deadline = self.deadline;
            tokio::select! {
                changed = self.notify.changed() => if changed.is_err() { return None },
                _ = self.drops.changed() => return None,
                _ = sleep_until(deadline) => return None,
                _ = tokio::time::sleep_until(self.next_bookmark), if self.spec.bookmarks => {
                    self.next_bookmark = Instant::now() + self.spec.bookmark_interval;
                    return Some(self.bookmark(false));
                }
            }
        }
    }

    /// Renders the events after the cursor; `None` when the history lost some of them.
    fn read(&mut self) -> Option<Bytes> {
        let events: Vec<Arc<Event>> = {
            let st = self.store.lock();
            let r = &st.resources[self.spec.res];
            if self.cursor < r.trimmed_rv {
                return None;
            }
            let start = r.history.partition_point(|e| e.rv <= self.cursor);
            let events: Vec<Arc<Event>> = r.history.range(start..).take(MAX_BATCH).cloned().collect();
            self.cursor = match events.last() {
                Some(last) if events.len() == MAX_BATCH => last.rv,
                _ => self.cursor.max(st.rv),
            };
            events
        };
        let mut buf = Vec::new();
        for event in &events {
            self.render(event, &mut buf);
        }
        Some(Bytes::from(buf))
    }

    /// Upstream `convertToWatchEvent`: an update that makes an object stop (start) matching
    /// the watch is sent as DELETED (ADDED).
    fn render(&self, ev: &Event, buf: &mut Vec<u8>) {
        let cur = passes(&self.spec, &ev.cur);
        match ev.kind {
            EventType::Added if cur => push_line(buf, "ADDED", &ev.cur.json),
            EventType::Deleted if cur => push_line(buf, "DELETED", &ev.cur.json),
            EventType::Modified => {
                let prev = ev.prev.as_ref().is_some_and(|p| passes(&self.spec, p));
                match (prev, cur) {
                    (true, true) => push_line(buf, "MODIFIED", &ev.cur.json),
                    (false, true) => push_line(buf, "ADDED", &ev.cur.json),
                    (true, false) => {
                        if let Some(p) = &ev.prev {
                            push_line(buf, "DELETED", &with_rv(&p.json, ev.rv));
                        }
                    }
                    (false, false) => {}
                }
            }
            _ => {}
        }
    }

    fn bookmark(&self, initial_end: bool) -> Bytes {
        let info = &RESOURCES[self.spec.res];
        let mut meta = serde_json::json!({ "resourceVersion": self.cursor.to_string() });
        if initial_end {
            obj::set(&mut meta, &["annotations", "k8s.io/initial-events-end"], Value::String("true".into()));
        }
        let object = serde_json::json!({ "kind": info.kind, "apiVersion": info.api_version(), "metadata": meta });
        let mut buf = Vec::new();
        push_line(&mut buf, "BOOKMARK", object.to_string().as_bytes());
        Bytes::from(buf)
    }
}

fn passes(spec: &WatchSpec, snap: &Snapshot) -> bool {
    spec.namespace.as_ref().is_none_or(|ns| snap.namespace == *ns) && spec.selector.matches(snap)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn push_line(buf: &mut Vec<u8>, kind: &str, object: &[u8]) {
    buf.extend_from_slice(b"{\"type\":\"");
    buf.extend_from_slice(kind.as_bytes());
    buf.extend_from_slice(b"\",\"object\":");
    buf.extend_from_slice(object);
    buf.extend_from_slice(b"}\n");
}

/// The previous object content stamped with the event's resourceVersion (upstream does the
/// same for the DELETED it synthesizes when an object stops matching).
fn with_rv(json: &[u8], rv: u64) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<Value>(json) else { return json.to_vec() };
    obj::set(&mut v, &["metadata", "resourceVersion"], Value::String(rv.to_string()));
    serde_json::to_vec(&v).unwrap_or_else(|_| json.to_vec())
}

/// The single ERROR event of a watch that asked for history no longer kept.
fn expired_line(requested: u64, oldest: u64) -> Bytes {
    let status = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("too old resource version: {requested} ({oldest})"),
        "reason": "Expired", "code": 410,
    });
    let mut buf = Vec::new();
    push_line(&mut buf, "ERROR", status.to_string().as_bytes());
    Bytes::from(buf)
}
