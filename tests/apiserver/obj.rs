//! Small helpers to read and write paths inside arbitrary JSON objects without panicking:
//! request bodies come from outside the process, so every access tolerates a missing or
//! wrongly-typed field (`serde_json`'s `IndexMut` would panic on a non-object).

use serde_json::{Map, Value};

/// The string at a JSON pointer (`/metadata/name`), if present and a string.
pub(crate) fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// Sets `path` to `new`, creating intermediate objects; false when a non-object is in the way.
pub(crate) fn set(v: &mut Value, path: &[&str], new: Value) -> bool {
    let Some((last, parents)) = path.split_last() else { return false };
    let mut cur = v;
    for key in parents {
        if cur.is_null() {
            *cur = Value::Object(Map::new());
        }
        let Some(map) = cur.as_object_mut() else { return false };
        cur = map.entry(*key).or_insert_with(|| Value::Object(Map::new()));
    }
    if cur.is_null() {
        *cur = Value::Object(Map::new());
    }
    match cur.as_object_mut() {
        Some(map) => {
            map.insert((*last).to_string(), new);
            true
        }
        None => false,
    }
}

/// Removes and returns the value at `path`, if the path exists.
pub(crate) fn remove(v: &mut Value, path: &[&str]) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let mut cur = v;
    for key in parents {
        cur = cur.as_object_mut()?.get_mut(*key)?;
    }
    cur.as_object_mut()?.remove(*last)
}

/// The object's `metadata` map, created when absent; `None` when the object or its metadata
/// is not a JSON object (the caller reports which).
pub(crate) fn meta_mut(v: &mut Value) -> Option<&mut Map<String, Value>> {
    let map = v.as_object_mut()?;
    map.entry("metadata").or_insert_with(|| Value::Object(Map::new())).as_object_mut()
}

/// A field rendered as a field selector sees it: strings as-is, scalars printed, else "".
pub(crate) fn field_string(v: &Value, dotted: &str) -> String {
    let mut cur = v;
    for key in dotted.split('.') {
        match cur.get(key) {
            Some(next) => cur = next,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        // Events' `source` selector means `source.component`.
        Value::Object(m) => m.get("component").and_then(Value::as_str).unwrap_or_default().to_string(),
        _ => String::new(),
    }
}

/// RFC 3339 UTC timestamp with second precision, as `metav1.Time` serializes.
pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `now + secs` in the same format (deletionTimestamp of a graceful delete).
pub(crate) fn rfc3339_in(secs: i64) -> String {
    let ts = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .unwrap_or_else(|_| jiff::Timestamp::now());
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
