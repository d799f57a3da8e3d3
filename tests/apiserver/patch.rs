//! PATCH bodies, by `Content-Type`, as kube-apiserver applies them:
//! - `application/merge-patch+json`: RFC 7386 (null deletes, objects merge, arrays replace);
//! - `application/strategic-merge-patch+json`: merge patch, except lists with a patch merge
//!   key (status.conditions by `type`, ownerReferences by `uid`, containers by `name`, ...)
//!   merge item by item, `finalizers` merges as a set, `$patch: delete` removes a list item and
//!   other `$` directives are ignored;
//! - `application/json-patch+json`: RFC 6902;
//! - `application/apply-patch+yaml` (server-side apply): the body (JSON) merged strategically,
//!   creating the object when missing. Field ownership is not tracked.

use serde_json::{Map, Value};

use super::error::ApiError;

/// The four patch flavours kube-rs can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchType {
    Merge,
    Strategic,
    Json,
    Apply,
}

impl PatchType {
    pub(crate) fn from_content_type(content_type: &str) -> Result<PatchType, ApiError> {
        let mime = content_type.split(';').next().unwrap_or_default().trim();
        match mime {
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchType::Apply),
            other => Err(ApiError::BadRequest(format!("the server does not support patch content type {other:?}"))),
        }
    }
}

/// Applies `body` to a copy of `target`.
pub(crate) fn apply(kind: PatchType, target: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let mut doc = target.clone();
    match kind {
        PatchType::Json => {
            let ops: json_patch::Patch =
                serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut doc, &ops.0).map_err(|e| ApiError::Invalid {
                resource: String::new(),
                name: String::new(),
                detail: e.to_string(),
            })?;
        }
        PatchType::Merge => json_patch::merge(&mut doc, &parse(body)?),
        PatchType::Strategic | PatchType::Apply => strategic_merge(&mut doc, &parse(body)?),
    }
    Ok(doc)
}

/// A patch or apply body as a JSON object.
pub(crate) fn parse(body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!("patch body is not valid JSON (this test server reads JSON only): {e}"))
    })?;
    if v.is_object() { Ok(v) } else { Err(ApiError::BadRequest("patch body must be a JSON object".into())) }
}

/// The patch merge key upstream declares for a list field, by field name.
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "conditions" | "addresses" => "type",
        "ownerReferences" => "uid",
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "resourceClaimStatuses" => "name",
        "volumeMounts" => "mountPath",
        "podIPs" | "hostIPs" => "ip",
        _ => return None,
    })
}

/// Strategic merge of `patch` into `doc` (see module docs).
pub(crate) fn strategic_merge(doc: &mut Value, patch: &Value) {
    let Some(patch) = patch.as_object() else {
        *doc = patch.clone();
        return;
    };
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let Some(map) = doc.as_object_mut() else { return };
    for (key, pv) in patch {
        if key.starts_with('$') {
            continue;
        }
        match pv {
            Value::Null => {
                map.remove(key);
            }
            Value::Array(items) => {
                let merged = match (map.get_mut(key), merge_key(key)) {
                    (Some(Value::Array(existing)), Some(mk)) => {
                        merge_list(existing, items, mk);
                        true
                    }
                    (Some(Value::Array(existing)), None) if key == "finalizers" => {
                        for item in items {
                            if !existing.contains(item) {
                                existing.push(item.clone());
                            }
                        }
                        true
                    }
                    _ => false,
                };
                if !merged {
                    let clean = items.iter().filter(|i| !is_delete(i)).map(strip_directives).collect();
                    map.insert(key.clone(), Value::Array(clean));
                }
            }
            Value::Object(_) => strategic_merge(map.entry(key.clone()).or_insert(Value::Null), pv),
            _ => {
                map.insert(key.clone(), pv.clone());
            }
        }
    }
}

/// Merges list items by `key`: matching items merge, `$patch: delete` removes, others append.
fn merge_list(existing: &mut Vec<Value>, patch: &[Value], key: &str) {
    for item in patch {
        let id = item.get(key);
        let pos = id.and_then(|id| existing.iter().position(|e| e.get(key) == Some(id)));
        match (pos, is_delete(item)) {
            (Some(i), true) => {
                existing.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut existing[i], item),
            (None, false) => existing.push(strip_directives(item)),
        }
    }
}

fn is_delete(item: &Value) -> bool {
    item.get("$patch").and_then(Value::as_str) == Some("delete")
}

/// A copy of `v` without `$`-prefixed directive keys (at any depth).
fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter().filter(|(k, _)| !k.starts_with('$')).map(|(k, v)| (k.clone(), strip_directives(v))).collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_merge_by_type_and_nulls_delete() {
        let mut doc = json!({"status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False"}, {"type": "Ready", "status": "False"}]}});
        let patch = json!({"status": {"phase": null, "conditions": [
            {"type": "PodScheduled", "status": "True"}, {"type": "DisruptionTarget", "status": "True"}]}});
        strategic_merge(&mut doc, &patch);
        assert_eq!(
            doc,
            json!({"status": {"conditions": [
            {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"},
            {"type": "DisruptionTarget", "status": "True"}]}})
        );
    }

    #[test]
    fn plain_lists_replace_and_delete_directive_removes() {
        let mut doc = json!({"spec": {"tolerations": [{"key": "a"}], "containers": [{"name": "c", "image": "x"}]}});
        let patch = json!({"spec": {"tolerations": [{"key": "b"}], "containers": [{"name": "c", "$patch": "delete"}]}});
        strategic_merge(&mut doc, &patch);
        assert_eq!(doc, json!({"spec": {"tolerations": [{"key": "b"}], "containers": []}}));
    }
}
