//! Fault injection: failures, latency and watch drops a real control plane produces under
//! load or during restarts. Rules match on (verb, resource, subresource[, object name]) and are
//! checked before the handler runs, so a failed request changes nothing. `"*"` in a rule
//! matches any verb / resource / subresource.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::error::ApiError;

#[derive(Debug, Clone)]
enum Action {
    Fail { status: u16, remaining: usize, retry_after: Option<u64> },
    Delay(Duration),
}

#[derive(Debug, Clone)]
struct Rule {
    verb: String,
    resource: String,
    subresource: String,
    name: Option<String>,
    action: Action,
}

impl Rule {
    fn matches(&self, verb: &str, resource: &str, subresource: &str, name: &str) -> bool {
        let eq = |rule: &str, actual: &str| rule == "*" || rule == actual;
        eq(&self.verb, verb)
            && eq(&self.resource, resource)
            && eq(&self.subresource, subresource)
            && self.name.as_deref().is_none_or(|n| n == name)
    }
}

/// What the rules decided for one request.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    pub delay: Option<Duration>,
    pub error: Option<ApiError>,
}

/// Handle on the server's fault rules; cheap to clone.
#[derive(Clone, Debug)]
pub struct Faults {
    rules: Arc<Mutex<Vec<Rule>>>,
    /// Bumped to end every open watch stream.
    drops: Arc<watch::Sender<u64>>,
}

impl Faults {
    pub(crate) fn new() -> Faults {
        Faults { rules: Arc::default(), drops: Arc::new(watch::channel(0).0) }
    }

    /// The next `times` requests matching (verb, resource, subresource) get this HTTP status with
    /// a proper Status body (429 carries `Retry-After: retry_after_s`).
    pub fn fail(
        &self,
        verb: &str,
        resource: &str,
        subresource: &str,
        status: u16,
        times: usize,
        retry_after_s: Option<u64>,
    ) {
        self.add(
            verb,
            resource,
            subresource,
            None,
            Action::Fail { status, remaining: times, retry_after: retry_after_s },
        );
    }

    /// Fails only requests whose object name equals `name` (e.g. one pod's binding).
    pub fn fail_named(&self, verb: &str, resource: &str, subresource: &str, name: &str, status: u16, times: usize) {
        let action = Action::Fail { status, remaining: times, retry_after: None };
        self.add(verb, resource, subresource, Some(name.to_string()), action);
    }

    /// Adds latency to matching requests (until cleared).
    pub fn delay(&self, verb: &str, resource: &str, subresource: &str, delay: Duration) {
        self.add(verb, resource, subresource, None, Action::Delay(delay));
    }

    /// Ends every open watch stream now (the client sees the stream end, as after an API
    /// server restart or a load-balancer timeout).
    pub fn drop_watches(&self) {
        self.drops.send_modify(|g| *g += 1);
    }

    /// Removes every failure and delay rule.
    pub fn clear(&self) {
        self.rules.lock().clear();
    }

    pub(crate) fn watch_drops(&self) -> watch::Receiver<u64> {
        self.drops.subscribe()
    }

    fn add(&self, verb: &str, resource: &str, subresource: &str, name: Option<String>, action: Action) {
        let rule = Rule { verb: verb.into(), resource: resource.into(), subresource: subresource.into(), name, action };
        self.rules.lock().push(rule);
    }

    /// Applies the rules to one request: the longest matching delay, and the first matching
    /// failure that has uses left (consuming one).
    pub(crate) fn check(&self, verb: &str, resource: &str, subresource: &str, name: &str) -> Verdict {
        let mut verdict = Verdict::default();
        let mut rules = self.rules.lock();
        for rule in rules.iter_mut().filter(|r| r.matches(verb, resource, subresource, name)) {
            match &mut rule.action {
                Action::Delay(d) => verdict.delay = verdict.delay.max(Some(*d)),
                Action::Fail { status, remaining, retry_after } if *remaining > 0 && verdict.error.is_none() => {
                    *remaining -= 1;
                    let (code, retry_after) = (*status, *retry_after);
                    let resource =
                        if subresource.is_empty() { resource.to_string() } else { format!("{resource}/{subresource}") };
                    verdict.error = Some(ApiError::Injected { code, verb: verb.to_string(), resource, retry_after });
                }
                Action::Fail { .. } => {}
            }
        }
        rules.retain(|r| !matches!(r.action, Action::Fail { remaining: 0, .. }));
        verdict
    }
}
