//! Label sets and the selectors that match them: label selectors (pods, namespaces) and node
//! selector terms (node affinity), with every upstream operator.

use crate::intern::Sym;

/// Labels of an object, sorted by key symbol for binary search.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LabelSet(Vec<(Sym, Sym)>);

impl LabelSet {
    /// Builds a set from `(key, value)` strings; a later duplicate key wins.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> LabelSet {
        let mut v: Vec<(Sym, Sym)> = pairs.into_iter().map(|(k, v)| (Sym::new(k), Sym::new(v))).collect();
        v.reverse();
        v.sort_by_key(|(k, _)| *k);
        v.dedup_by_key(|(k, _)| *k);
        LabelSet(v)
    }

    /// The value of `key`.
    pub fn get(&self, key: Sym) -> Option<Sym> {
        self.0.binary_search_by_key(&key, |(k, _)| *k).ok().map(|i| self.0[i].1)
    }

    /// Whether `key` is present.
    pub fn has(&self, key: Sym) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: Sym, value: Sym) {
        match self.0.binary_search_by_key(&key, |(k, _)| *k) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (key, value)),
        }
    }

    /// All `(key, value)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (Sym, Sym)> + '_ {
        self.0.iter().copied()
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether every pair of `subset` is in `self` (a `nodeSelector` match).
    pub fn contains_all(&self, subset: &LabelSet) -> bool {
        subset.iter().all(|(k, v)| self.get(k) == Some(v))
    }
}

/// A selector operator. `Gt`/`Lt` exist only in node selector terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    /// The label's value is one of the values.
    In,
    /// The label is absent or its value is none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
    /// The label's value, read as an integer, is greater than the single value.
    Gt,
    /// The label's value, read as an integer, is less than the single value.
    Lt,
}

impl Operator {
    /// Parses an upstream operator name.
    pub fn parse(s: &str) -> Option<Operator> {
        Some(match s {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            "Gt" => Operator::Gt,
            "Lt" => Operator::Lt,
            _ => return None,
        })
    }
}

/// One `key op values` requirement.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requirement {
    /// The label key.
    pub key: Sym,
    /// The operator.
    pub op: Operator,
    /// The values (`In`, `NotIn`).
    pub values: Vec<Sym>,
    /// The integer bound (`Gt`, `Lt`).
    pub bound: i64,
}

impl Requirement {
    /// Whether a label value (or its absence) satisfies the requirement.
    pub fn matches_value(&self, value: Option<Sym>) -> bool {
        match (self.op, value) {
            (Operator::In, Some(v)) => self.values.contains(&v),
            (Operator::In, None) => false,
            (Operator::NotIn, Some(v)) => !self.values.contains(&v),
            (Operator::NotIn, None) => true,
            (Operator::Exists, v) => v.is_some(),
            (Operator::DoesNotExist, v) => v.is_none(),
            (Operator::Gt, Some(v)) => v.as_str().parse::<i64>().is_ok_and(|n| n > self.bound),
            (Operator::Lt, Some(v)) => v.as_str().parse::<i64>().is_ok_and(|n| n < self.bound),
            (Operator::Gt | Operator::Lt, None) => false,
        }
    }

    /// Whether `labels` satisfy the requirement.
    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.matches_value(labels.get(self.key))
    }
}

/// A label selector (`matchLabels` + `matchExpressions`, ANDed). An empty selector matches
/// everything; a missing selector is represented by `Option::None` at the use site, and
/// matches nothing, as upstream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LabelSelector {
    /// Requirements, all of which must hold.
    pub requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// A selector requiring each `key=value`.
    pub fn from_match_labels(labels: &LabelSet) -> LabelSelector {
        let requirements =
            labels.iter().map(|(key, v)| Requirement { key, op: Operator::In, values: vec![v], bound: 0 }).collect();
        LabelSelector { requirements }
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector matches every label set.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// One node selector term: expressions over labels and over fields (only `metadata.name`
/// exists upstream), ANDed. A term with no requirements matches no node, as upstream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NodeSelectorTerm {
    /// `matchExpressions`.
    pub match_expressions: Vec<Requirement>,
    /// `matchFields` on `metadata.name`, the requirement's key being unused.
    pub match_fields: Vec<Requirement>,
}

impl NodeSelectorTerm {
    /// Whether a node with these labels and this name satisfies the term.
    pub fn matches(&self, labels: &LabelSet, node_name: Sym) -> bool {
        if self.match_expressions.is_empty() && self.match_fields.is_empty() {
            return false;
        }
        self.match_expressions.iter().all(|r| r.matches(labels))
            && self.match_fields.iter().all(|r| r.matches_value(Some(node_name)))
    }
}

/// A node selector: terms ORed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NodeSelector {
    /// The terms; a node matching any of them matches.
    pub terms: Vec<NodeSelectorTerm>,
}

impl NodeSelector {
    /// Whether a node with these labels and this name matches any term.
    pub fn matches(&self, labels: &LabelSet, node_name: Sym) -> bool {
        self.terms.iter().any(|t| t.matches(labels, node_name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(key: &str, op: Operator, values: &[&str]) -> Requirement {
        let values = values.iter().map(|v| Sym::new(v)).collect();
        Requirement { key: Sym::new(key), op, values, bound: 0 }
    }

    #[test]
    fn label_set_lookup_and_subset() {
        let l = LabelSet::from_pairs([("zone", "a"), ("rack", "r1"), ("zone", "b")]);
        assert_eq!(l.get(Sym::new("zone")).map(Sym::as_str), Some("b"));
        assert!(l.contains_all(&LabelSet::from_pairs([("rack", "r1")])));
        assert!(!l.contains_all(&LabelSet::from_pairs([("rack", "r2")])));
        assert!(l.contains_all(&LabelSet::default()));
    }

    #[test]
    fn operators_follow_upstream_semantics() {
        let l = LabelSet::from_pairs([("gpu", "8"), ("zone", "a")]);
        assert!(req("zone", Operator::In, &["a", "b"]).matches(&l));
        assert!(!req("zone", Operator::NotIn, &["a"]).matches(&l));
        assert!(req("missing", Operator::NotIn, &["a"]).matches(&l));
        assert!(req("zone", Operator::Exists, &[]).matches(&l));
        assert!(req("missing", Operator::DoesNotExist, &[]).matches(&l));
        let gt = Requirement { bound: 4, ..req("gpu", Operator::Gt, &[]) };
        assert!(gt.matches(&l));
        let lt = Requirement { bound: 4, ..req("gpu", Operator::Lt, &[]) };
        assert!(!lt.matches(&l));
        let not_a_number = Requirement { bound: 0, ..req("zone", Operator::Gt, &[]) };
        assert!(!not_a_number.matches(&l));
    }

    #[test]
    fn empty_node_selector_term_matches_nothing() {
        let l = LabelSet::from_pairs([("zone", "a")]);
        assert!(!NodeSelectorTerm::default().matches(&l, Sym::new("n1")));
        let by_name = NodeSelectorTerm {
            match_expressions: vec![],
            match_fields: vec![req("metadata.name", Operator::In, &["n1"])],
        };
        assert!(by_name.matches(&l, Sym::new("n1")));
        assert!(!by_name.matches(&l, Sym::new("n2")));
    }

    #[test]
    fn empty_label_selector_matches_everything() {
        assert!(LabelSelector::default().matches(&LabelSet::default()));
    }
}
