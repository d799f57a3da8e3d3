//! Label and field selectors with upstream grammar and semantics.
//!
//! Label selectors (`k8s.io/apimachinery/pkg/labels`): comma-separated requirements `k=v`,
//! `k==v`, `k!=v` (also true when `k` is absent), `k`, `!k`, `k in (a,b)`, `k notin (a,b)` (also
//! true when absent), `k>n`, `k<n`. Field selectors (`pkg/fields`): `path=v`, `path==v`,
//! `path!=v`, where an absent field reads as "" and only the labels a registry supports are
//! accepted (others are a 400, as upstream). Matching works on a [`Snapshot`]'s precomputed
//! labels and field values, so a watch never re-reads JSON to filter an event.

use super::error::ApiError;
use super::resources::ResourceInfo;
use super::store::Snapshot;

/// A parsed `labelSelector` + `fieldSelector` pair; empty matches everything.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selector {
    labels: Vec<LabelReq>,
    fields: Vec<FieldReq>,
}

#[derive(Debug, Clone)]
struct LabelReq {
    key: String,
    op: LabelOp,
}

#[derive(Debug, Clone)]
enum LabelOp {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
    Gt(i64),
    Lt(i64),
}

#[derive(Debug, Clone)]
struct FieldReq {
    field: FieldRef,
    value: String,
    equal: bool,
}

/// Which snapshot value a field requirement reads.
#[derive(Debug, Clone, Copy)]
enum FieldRef {
    Name,
    Namespace,
    /// Index into [`ResourceInfo::fields`] / [`Snapshot::fields`].
    Other(usize),
}

impl Selector {
    /// Parses the query parameters of a list/watch/deletecollection on `info`.
    pub fn parse(info: &ResourceInfo, labels: Option<&str>, fields: Option<&str>) -> Result<Self, ApiError> {
        let mut sel = Selector::default();
        for term in split_terms(labels.unwrap_or("")) {
            sel.labels.push(parse_label(term)?);
        }
        for term in fields.unwrap_or("").split(',').map(str::trim).filter(|t| !t.is_empty()) {
            sel.fields.push(parse_field(info, term)?);
        }
        Ok(sel)
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, snap: &Snapshot) -> bool {
        self.labels.iter().all(|r| r.matches(snap)) && self.fields.iter().all(|r| r.matches(snap))
    }
}

impl LabelReq {
    fn matches(&self, snap: &Snapshot) -> bool {
        let value = snap.labels.get(&self.key);
        match (&self.op, value) {
            (LabelOp::In(vals), Some(v)) => vals.contains(v),
            (LabelOp::In(_), None) => false,
            (LabelOp::NotIn(vals), Some(v)) => !vals.contains(v),
            (LabelOp::NotIn(_), None) => true,
            (LabelOp::Exists, v) => v.is_some(),
            (LabelOp::NotExists, v) => v.is_none(),
            (LabelOp::Gt(n), Some(v)) => v.parse::<i64>().is_ok_and(|x| x > *n),
            (LabelOp::Lt(n), Some(v)) => v.parse::<i64>().is_ok_and(|x| x < *n),
            (LabelOp::Gt(_) | LabelOp::Lt(_), None) => false,
        }
    }
}

impl FieldReq {
    fn matches(&self, snap: &Snapshot) -> bool {
        let actual = match self.field {
            FieldRef::Name => snap.name.as_str(),
            FieldRef::Namespace => snap.namespace.as_str(),
            FieldRef::Other(i) => snap.fields.get(i).map_or("", String::as_str),
        };
        (actual == self.value) == self.equal
    }
}

/// Splits on commas outside parentheses (`a in (x,y),b` is two terms).
fn split_terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter().map(str::trim).filter(|t| !t.is_empty()).collect()
}

fn bad_label(term: &str, why: &str) -> ApiError {
    ApiError::BadRequest(format!("unable to parse requirement: {why}: \"{term}\""))
}

fn parse_label(term: &str) -> Result<LabelReq, ApiError> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(LabelReq { key: label_key(key.trim(), term)?, op: LabelOp::NotExists });
    }
    if let Some(open) = term.find('(') {
        let head = term[..open].trim();
        let inner = term[open + 1..].strip_suffix(')').ok_or_else(|| bad_label(term, "missing ')'"))?;
        let vals: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
        for v in &vals {
            label_value(v, term)?;
        }
        let (key, op) = if let Some(k) = head.strip_suffix(" notin") {
            (k, LabelOp::NotIn(vals))
        } else if let Some(k) = head.strip_suffix(" in") {
            (k, LabelOp::In(vals))
        } else {
            return Err(bad_label(term, "expected 'in' or 'notin' before '('"));
        };
        return Ok(LabelReq { key: label_key(key.trim(), term)?, op });
    }
    for (sep, make) in OPERATORS {
        if let Some((k, v)) = term.split_once(sep) {
            let key = label_key(k.trim(), term)?;
            let v = v.trim();
            return Ok(LabelReq { key, op: make(v).ok_or_else(|| bad_label(term, "invalid value"))? });
        }
    }
    Ok(LabelReq { key: label_key(term, term)?, op: LabelOp::Exists })
}

type MakeOp = fn(&str) -> Option<LabelOp>;

/// Binary operators, longest first so `==` / `!=` are not read as `=`.
const OPERATORS: &[(&str, MakeOp)] = &[
    ("!=", |v| valid_value(v).then(|| LabelOp::NotIn(vec![v.to_string()]))),
    ("==", |v| valid_value(v).then(|| LabelOp::In(vec![v.to_string()]))),
    ("=", |v| valid_value(v).then(|| LabelOp::In(vec![v.to_string()]))),
    (">", |v| v.parse().ok().map(LabelOp::Gt)),
    ("<", |v| v.parse().ok().map(LabelOp::Lt)),
];

fn label_key(key: &str, term: &str) -> Result<String, ApiError> {
    let ok = !key.is_empty()
        && key.len() <= 317
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok { Ok(key.to_string()) } else { Err(bad_label(term, "invalid label key")) }
}

fn label_value(v: &str, term: &str) -> Result<(), ApiError> {
    if valid_value(v) { Ok(()) } else { Err(bad_label(term, "invalid label value")) }
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63 && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn parse_field(info: &ResourceInfo, term: &str) -> Result<FieldReq, ApiError> {
    let (path, value, equal) = if let Some((p, v)) = term.split_once("!=") {
        (p, v, false)
    } else if let Some((p, v)) = term.split_once("==") {
        (p, v, true)
    } else if let Some((p, v)) = term.split_once('=') {
        (p, v, true)
    } else {
        return Err(ApiError::BadRequest(format!("invalid selector: '{term}'; can't understand '{term}'")));
    };
    let path = path.trim();
    let field = match path {
        "metadata.name" => FieldRef::Name,
        "metadata.namespace" => FieldRef::Namespace,
        _ => match info.fields.iter().position(|f| *f == path) {
            Some(i) => FieldRef::Other(i),
            None => return Err(ApiError::BadRequest(format!("field label not supported: {path}"))),
        },
    };
    Ok(FieldReq { field, value: value.trim().to_string(), equal })
}
