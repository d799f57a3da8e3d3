//! Statuses plugins return, and the "0/N nodes are available" summary built from them.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use crate::nodeinfo::NodeId;

/// A plugin's verdict, named as in kube-scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// The plugin is satisfied.
    Success,
    /// An internal error: the pod is retried, the node is not blamed.
    Error,
    /// The pod does not fit here, but could once other pods move (e.g. by preemption).
    Unschedulable,
    /// The pod cannot fit here whatever happens to other pods.
    UnschedulableAndUnresolvable,
    /// Permit: the pod waits (a gang not yet complete).
    Wait,
    /// PreFilter/PreScore: the plugin has nothing to do for this pod; skip its Filter/Score.
    Skip,
}

/// A reason string. Most are static; building one allocates only when it names a value.
pub type Reason = Cow<'static, str>;

/// A plugin's result with the reasons a person reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The verdict.
    pub code: Code,
    /// Person-readable reasons ("Insufficient cpu").
    pub reasons: Vec<Reason>,
    /// The plugin that failed, once the framework has attributed it.
    pub plugin: &'static str,
}

impl Status {
    /// Success, allocation-free.
    pub const fn success() -> Status {
        Status { code: Code::Success, reasons: Vec::new(), plugin: "" }
    }

    /// A status with one reason.
    pub fn new(code: Code, reason: impl Into<Reason>) -> Status {
        Status { code, reasons: vec![reason.into()], plugin: "" }
    }

    /// Unschedulable with one reason.
    pub fn unschedulable(reason: impl Into<Reason>) -> Status {
        Status::new(Code::Unschedulable, reason)
    }

    /// Unschedulable and unresolvable with one reason.
    pub fn unresolvable(reason: impl Into<Reason>) -> Status {
        Status::new(Code::UnschedulableAndUnresolvable, reason)
    }

    /// An internal error.
    pub fn error(reason: impl Into<Reason>) -> Status {
        Status::new(Code::Error, reason)
    }

    /// Skip (PreFilter/PreScore).
    pub const fn skip() -> Status {
        Status { code: Code::Skip, reasons: Vec::new(), plugin: "" }
    }

    /// Whether the verdict is Success.
    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    /// Whether the verdict rejects the node or pod.
    pub fn is_rejected(&self) -> bool {
        matches!(self.code, Code::Unschedulable | Code::UnschedulableAndUnresolvable)
    }

    /// Attributes the status to `plugin`.
    pub fn with_plugin(mut self, plugin: &'static str) -> Status {
        self.plugin = plugin;
        self
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reasons.is_empty() { write!(f, "{:?}", self.code) } else { f.write_str(&self.reasons.join(", ")) }
    }
}

/// Why a pod fit on no node: for each reason, on how many nodes it was the verdict.
///
/// Upstream rules: a node counts under the statuses of the first Filter it fails (in profile
/// order); a plugin may give several reasons for one node (NodeResourcesFit lists every
/// resource the node is short of); the message sorts reasons as strings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnosis {
    /// Total nodes considered.
    pub num_all_nodes: usize,
    /// Reason → number of nodes.
    pub reasons: BTreeMap<String, usize>,
    /// A PreFilter rejected the pod before nodes were looked at.
    pub pre_filter_message: Option<String>,
    /// The plugins that rejected at least one node, for requeueing on relevant events.
    pub unschedulable_plugins: Vec<&'static str>,
    /// The nodes that rejected the pod as [`Code::Unschedulable`]: where removing pods might
    /// make room, so the only nodes preemption looks at (upstream's
    /// `nodesWherePreemptionMightHelp`).
    pub resolvable: Vec<NodeId>,
    /// What PostFilter (preemption) made of the failure, appended to the message as upstream
    /// does ("preemption: 0/3 nodes are available: ...").
    pub post_filter_message: Option<Box<str>>,
}

impl Diagnosis {
    /// Records that a node failed with `status`.
    pub fn add_node_status(&mut self, status: &Status) {
        for r in &status.reasons {
            // Called once per failed node: most fail for a reason already counted, so look it
            // up before allocating its key.
            match self.reasons.get_mut(r.as_ref()) {
                Some(n) => *n += 1,
                None => {
                    self.reasons.insert(r.to_string(), 1);
                }
            }
        }
        if !status.plugin.is_empty() && !self.unschedulable_plugins.contains(&status.plugin) {
            self.unschedulable_plugins.push(status.plugin);
        }
    }

    /// Records that node `id` failed with `status`, remembering whether preemption might help.
    pub fn add_node(&mut self, id: NodeId, status: &Status) {
        if status.code == Code::Unschedulable {
            self.resolvable.push(id);
        }
        self.add_node_status(status);
    }

    /// Records that PreFilter plugins `plugins` left `count` nodes out of the candidates
    /// (upstream sets these absent nodes' status to "node(s) didn't satisfy plugin(s) [..]",
    /// the plugins sorted by name).
    pub fn add_nodes_left_out(&mut self, count: usize, plugins: &[&'static str]) {
        if count == 0 {
            return;
        }
        let mut names = plugins.to_vec();
        names.sort_unstable();
        names.dedup();
        *self.reasons.entry(format!("node(s) didn't satisfy plugin(s) [{}]", names.join(" "))).or_insert(0) += count;
        for p in names {
            if !self.unschedulable_plugins.contains(&p) {
                self.unschedulable_plugins.push(p);
            }
        }
    }

    /// Folds another diagnosis (from a parallel chunk) into this one.
    pub fn merge(&mut self, other: Diagnosis) {
        for (r, n) in other.reasons {
            *self.reasons.entry(r).or_insert(0) += n;
        }
        for p in other.unschedulable_plugins {
            if !self.unschedulable_plugins.contains(&p) {
                self.unschedulable_plugins.push(p);
            }
        }
        self.resolvable.extend(other.resolvable);
    }

    /// The upstream `FitError` message, as shown in a pending pod's `PodScheduled` condition:
    /// "0/5 nodes are available: 3 Insufficient cpu, 2 node(s) had untolerated taint(s)."
    /// followed by what preemption made of it, each part closed by a period as upstream's
    /// `SeparatorFormat` does (so a preemption message ends in "..").
    pub fn message(&self) -> String {
        let mut out = format!("0/{} nodes are available", self.num_all_nodes);
        if let Some(m) = &self.pre_filter_message {
            out = format!("{out}: {m}.");
        } else if self.reasons.is_empty() {
            out.push('.');
        } else {
            let mut parts: Vec<String> = self.reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
            parts.sort();
            out = format!("{out}: {}.", parts.join(", "));
        }
        if let Some(m) = &self.post_filter_message {
            out = format!("{out} {m}.");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_matches_upstream_format() {
        let mut d = Diagnosis { num_all_nodes: 5000, ..Default::default() };
        for _ in 0..3000 {
            d.add_node_status(&Status::unschedulable("Insufficient cpu"));
        }
        for _ in 0..2000 {
            d.add_node_status(&Status::unresolvable("node(s) had untolerated taint(s)"));
        }
        assert_eq!(
            d.message(),
            "0/5000 nodes are available: 2000 node(s) had untolerated taint(s), 3000 Insufficient cpu."
        );
    }

    #[test]
    fn one_node_may_count_under_several_reasons() {
        let mut d = Diagnosis { num_all_nodes: 1, ..Default::default() };
        let s = Status {
            code: Code::Unschedulable,
            reasons: vec!["Insufficient cpu".into(), "Insufficient memory".into()],
            plugin: "NodeResourcesFit",
        };
        d.add_node_status(&s);
        assert_eq!(d.message(), "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory.");
        assert_eq!(d.unschedulable_plugins, vec!["NodeResourcesFit"]);
    }

    #[test]
    fn nodes_pre_filter_left_out_name_the_plugins() {
        let mut d = Diagnosis { num_all_nodes: 3, ..Default::default() };
        d.add_node_status(&Status::unschedulable("Insufficient cpu"));
        d.add_nodes_left_out(2, &["NodeAffinity"]);
        assert_eq!(
            d.message(),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't satisfy plugin(s) [NodeAffinity]."
        );
        assert_eq!(d.unschedulable_plugins, vec!["NodeAffinity"]);
        let mut two = Diagnosis { num_all_nodes: 2, ..Default::default() };
        two.add_nodes_left_out(2, &["NodeName", "NodeAffinity"]);
        assert_eq!(
            two.message(),
            "0/2 nodes are available: 2 node(s) didn't satisfy plugin(s) [NodeAffinity NodeName]."
        );
    }

    #[test]
    fn pre_filter_rejection_is_reported_whole() {
        let d = Diagnosis {
            num_all_nodes: 3,
            pre_filter_message: Some("pod has unbound immediate PersistentVolumeClaims".into()),
            ..Default::default()
        };
        assert_eq!(d.message(), "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims.");
    }
}
