//! Labels, label selectors and node selector terms, validated as upstream validates them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use tessera_plugins::intern::Sym;
use tessera_plugins::labels::{LabelSelector, LabelSet, NodeSelectorTerm, Operator, Requirement};

use super::error::{FieldError, FieldProblem};

/// Operators a label selector accepts.
const LABEL_OPERATORS: &str = "In, NotIn, Exists, DoesNotExist";
/// Operators a node selector requirement accepts.
const NODE_OPERATORS: &str = "In, NotIn, Exists, DoesNotExist, Gt, Lt";
/// The only field a node selector's `matchFields` can name.
const NODE_NAME_FIELD: &str = "metadata.name";

/// A label map as a [`LabelSet`]; `None` is empty.
pub fn label_set(labels: Option<&BTreeMap<String, String>>) -> LabelSet {
    LabelSet::from_pairs(labels.into_iter().flatten().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// A label selector at `path`. A missing selector stays `None` (it matches no object, as
/// upstream's `LabelSelectorAsSelector` turns nil into `Nothing`); an empty one matches all.
pub fn label_selector(selector: Option<&meta::LabelSelector>, path: &str) -> Result<Option<LabelSelector>, FieldError> {
    let Some(selector) = selector else { return Ok(None) };
    let mut requirements: Vec<Requirement> = label_set(selector.match_labels.as_ref())
        .iter()
        .map(|(key, value)| Requirement { key, op: Operator::In, values: vec![value], bound: 0 })
        .collect();
    for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
        let path = format!("{path}.matchExpressions[{i}]");
        requirements.push(label_requirement(e, &path)?);
    }
    Ok(Some(LabelSelector { requirements }))
}

fn label_requirement(e: &meta::LabelSelectorRequirement, path: &str) -> Result<Requirement, FieldError> {
    let op = match Operator::parse(&e.operator) {
        Some(op @ (Operator::In | Operator::NotIn | Operator::Exists | Operator::DoesNotExist)) => op,
        _ => return Err(FieldError::unsupported(format!("{path}.operator"), &e.operator, LABEL_OPERATORS)),
    };
    requirement(&e.key, op, e.values.as_deref().unwrap_or_default(), path)
}

/// Adds `key <op> [the pod's value]` for each key the pod has a label for: how upstream folds
/// `matchLabelKeys` (`In`) and `mismatchLabelKeys` (`NotIn`) into a selector. Keys the pod
/// lacks are skipped, and a missing selector stays missing (it matches nothing either way).
pub fn fold_label_keys(
    selector: &mut Option<LabelSelector>,
    keys: Option<&Vec<String>>,
    op: Operator,
    labels: &LabelSet,
) {
    let Some(selector) = selector else { return };
    for key in keys.into_iter().flatten() {
        // A key never interned is on no object, the pod included.
        let Some(key) = Sym::get(key) else { continue };
        if let Some(value) = labels.get(key) {
            selector.requirements.push(Requirement { key, op, values: vec![value], bound: 0 });
        }
    }
}

/// A node selector term at `path`.
pub fn node_selector_term(term: &core::NodeSelectorTerm, path: &str) -> Result<NodeSelectorTerm, FieldError> {
    let mut out = NodeSelectorTerm::default();
    for (i, e) in term.match_expressions.iter().flatten().enumerate() {
        let path = format!("{path}.matchExpressions[{i}]");
        out.match_expressions.push(node_requirement(e, &path)?);
    }
    for (i, e) in term.match_fields.iter().flatten().enumerate() {
        let path = format!("{path}.matchFields[{i}]");
        out.match_fields.push(field_requirement(e, &path)?);
    }
    Ok(out)
}

fn node_requirement(e: &core::NodeSelectorRequirement, path: &str) -> Result<Requirement, FieldError> {
    let op = Operator::parse(&e.operator)
        .ok_or_else(|| FieldError::unsupported(format!("{path}.operator"), &e.operator, NODE_OPERATORS))?;
    requirement(&e.key, op, e.values.as_deref().unwrap_or_default(), path)
}

/// A `matchFields` entry: upstream supports only `metadata.name` with `In` or `NotIn` and a
/// single value.
fn field_requirement(e: &core::NodeSelectorRequirement, path: &str) -> Result<Requirement, FieldError> {
    if e.key != NODE_NAME_FIELD {
        return Err(FieldError::unsupported(format!("{path}.key"), &e.key, NODE_NAME_FIELD));
    }
    let op = match Operator::parse(&e.operator) {
        Some(op @ (Operator::In | Operator::NotIn)) => op,
        _ => return Err(FieldError::unsupported(format!("{path}.operator"), &e.operator, "In, NotIn")),
    };
    let values = e.values.as_deref().unwrap_or_default();
    if values.len() != 1 {
        let reason = "must have one element for a metadata.name field selector";
        return Err(FieldError::invalid(format!("{path}.values"), values.join(","), reason));
    }
    requirement(&e.key, op, values, path)
}

/// Builds `key op values`, checking the values the operator needs (upstream
/// `labels.NewRequirement` and node selector validation).
fn requirement(key: &str, op: Operator, values: &[String], path: &str) -> Result<Requirement, FieldError> {
    if key.is_empty() {
        return Err(FieldError::new(format!("{path}.key"), FieldProblem::Missing));
    }
    let key = Sym::new(key);
    let field = format!("{path}.values");
    match op {
        Operator::In | Operator::NotIn if values.is_empty() => {
            Err(FieldError::invalid(field, "", "must be specified when operator is In or NotIn"))
        }
        Operator::In | Operator::NotIn => {
            Ok(Requirement { key, op, values: values.iter().map(|v| Sym::new(v)).collect(), bound: 0 })
        }
        Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
            Err(FieldError::invalid(field, values.join(","), "must be empty when operator is Exists or DoesNotExist"))
        }
        Operator::Exists | Operator::DoesNotExist => Ok(Requirement { key, op, values: Vec::new(), bound: 0 }),
        Operator::Gt | Operator::Lt => {
            let [value] = values else {
                return Err(FieldError::invalid(
                    field,
                    values.join(","),
                    "must have one element when operator is Gt or Lt",
                ));
            };
            let bound = value
                .parse::<i64>()
                .map_err(|_| FieldError::invalid(format!("{field}[0]"), value, "must be an integer for Gt and Lt"))?;
            Ok(Requirement { key, op, values: Vec::new(), bound })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label_req(key: &str, op: &str, values: &[&str]) -> meta::LabelSelectorRequirement {
        meta::LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn node_req(key: &str, op: &str, values: &[&str]) -> core::NodeSelectorRequirement {
        core::NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn term(exprs: Vec<core::NodeSelectorRequirement>) -> core::NodeSelectorTerm {
        core::NodeSelectorTerm { match_expressions: Some(exprs), match_fields: None }
    }

    #[test]
    fn label_selector_combines_match_labels_and_every_operator() {
        let sel = meta::LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![
                label_req("tier", "In", &["a", "b"]),
                label_req("tier", "NotIn", &["c"]),
                label_req("team", "Exists", &[]),
                label_req("legacy", "DoesNotExist", &[]),
            ]),
        };
        let s = label_selector(Some(&sel), "s").unwrap().unwrap();
        let ops: Vec<_> = s.requirements.iter().map(|r| r.op).collect();
        use Operator::*;
        assert_eq!(ops, vec![In, In, NotIn, Exists, DoesNotExist]);
        assert!(s.matches(&LabelSet::from_pairs([("app", "web"), ("tier", "a"), ("team", "x")])));
        assert!(!s.matches(&LabelSet::from_pairs([("app", "web"), ("tier", "c"), ("team", "x")])));
        assert!(!s.matches(&LabelSet::from_pairs([("app", "web"), ("tier", "a"), ("team", "x"), ("legacy", "1")])));
    }

    #[test]
    fn missing_selector_is_none_and_empty_selector_matches_all() {
        assert_eq!(label_selector(None, "s").unwrap(), None);
        let empty = label_selector(Some(&meta::LabelSelector::default()), "s").unwrap().unwrap();
        assert!(empty.matches(&LabelSet::from_pairs([("any", "thing")])));
    }

    #[test]
    fn label_selector_errors_name_the_field() {
        let bad = |e| meta::LabelSelector {
            match_expressions: Some(vec![label_req("k", "In", &["v"]), e]),
            ..Default::default()
        };
        let err = label_selector(Some(&bad(label_req("k", "Gt", &["1"]))), "spec.x.labelSelector").unwrap_err();
        assert_eq!(err.field, "spec.x.labelSelector.matchExpressions[1].operator");
        assert!(matches!(err.problem, FieldProblem::Unsupported { ref value, .. } if value == "Gt"));
        let err = label_selector(Some(&bad(label_req("k", "In", &[]))), "s").unwrap_err();
        assert_eq!(err.field, "s.matchExpressions[1].values");
        let err = label_selector(Some(&bad(label_req("k", "Exists", &["v"]))), "s").unwrap_err();
        assert_eq!(err.field, "s.matchExpressions[1].values");
        let err = label_selector(Some(&bad(label_req("", "Exists", &[]))), "s").unwrap_err();
        assert_eq!((err.field.as_str(), err.problem), ("s.matchExpressions[1].key", FieldProblem::Missing));
    }

    #[test]
    fn node_terms_accept_every_operator() {
        let t = term(vec![
            node_req("zone", "In", &["a"]),
            node_req("zone", "NotIn", &["b"]),
            node_req("gpu", "Exists", &[]),
            node_req("old", "DoesNotExist", &[]),
            node_req("cores", "Gt", &["8"]),
            node_req("cores", "Lt", &["-1000"]),
        ]);
        let t = node_selector_term(&t, "t").unwrap();
        let got: Vec<_> = t.match_expressions.iter().map(|r| (r.op, r.bound)).collect();
        use Operator::*;
        assert_eq!(got, vec![(In, 0), (NotIn, 0), (Exists, 0), (DoesNotExist, 0), (Gt, 8), (Lt, -1000)]);
        let t = term(vec![node_req("cores", "Gt", &["8"]), node_req("cores", "Lt", &["64"])]);
        let t = node_selector_term(&t, "t").unwrap();
        let node = Sym::new("n1");
        assert!(t.matches(&LabelSet::from_pairs([("cores", "16")]), node));
        assert!(!t.matches(&LabelSet::from_pairs([("cores", "8")]), node));
    }

    #[test]
    fn node_term_errors_name_the_field() {
        let p = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]";
        let t = term(vec![node_req("a", "In", &["x"]), node_req("b", "Near", &["x"])]);
        let err = node_selector_term(&t, p).unwrap_err();
        assert_eq!(err.field, format!("{p}.matchExpressions[1].operator"));
        let t = term(vec![node_req("cores", "Gt", &["eight"])]);
        let err = node_selector_term(&t, "t").unwrap_err();
        assert_eq!(err.field, "t.matchExpressions[0].values[0]");
        assert!(err.problem.to_string().contains("must be an integer"), "{}", err.problem);
        let t = term(vec![node_req("cores", "Lt", &["1", "2"])]);
        assert_eq!(node_selector_term(&t, "t").unwrap_err().field, "t.matchExpressions[0].values");
        let t = term(vec![node_req("cores", "Lt", &[])]);
        assert_eq!(node_selector_term(&t, "t").unwrap_err().field, "t.matchExpressions[0].values");
    }

    #[test]
    fn match_fields_take_only_the_node_name() {
        let fields = |r| core::NodeSelectorTerm { match_expressions: None, match_fields: Some(vec![r]) };
        let t = node_selector_term(&fields(node_req("metadata.name", "In", &["n1"])), "t").unwrap();
        assert!(t.matches(&LabelSet::default(), Sym::new("n1")));
        assert!(!t.matches(&LabelSet::default(), Sym::new("n2")));
        let t = node_selector_term(&fields(node_req("metadata.name", "NotIn", &["n1"])), "t").unwrap();
        assert!(t.matches(&LabelSet::default(), Sym::new("n2")));
        let err = node_selector_term(&fields(node_req("metadata.uid", "In", &["n1"])), "t").unwrap_err();
        assert_eq!(err.field, "t.matchFields[0].key");
        let err = node_selector_term(&fields(node_req("metadata.name", "Exists", &[])), "t").unwrap_err();
        assert_eq!(err.field, "t.matchFields[0].operator");
        let err = node_selector_term(&fields(node_req("metadata.name", "In", &["a", "b"])), "t").unwrap_err();
        assert_eq!(err.field, "t.matchFields[0].values");
    }

    #[test]
    fn label_keys_fold_only_when_the_pod_has_them() {
        let labels = LabelSet::from_pairs([("app", "web"), ("version", "v2")]);
        let keys = vec!["version".to_string(), "absent-key-never-seen".to_string(), "app".to_string()];
        let mut sel = Some(LabelSelector::default());
        fold_label_keys(&mut sel, Some(&keys), Operator::NotIn, &labels);
        let got: Vec<_> =
            sel.unwrap().requirements.iter().map(|r| (r.key.as_str(), r.op, r.values[0].as_str())).collect();
        assert_eq!(got, vec![("version", Operator::NotIn, "v2"), ("app", Operator::NotIn, "web")]);
        let mut none = None;
        fold_label_keys(&mut none, Some(&keys), Operator::In, &labels);
        assert_eq!(none, None);
    }
}
