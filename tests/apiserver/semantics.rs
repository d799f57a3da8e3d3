//! Per-resource rules kube-apiserver's registries and default admission plugins apply on
//! create, update and delete (`PrepareForCreate`, `PrepareForUpdate`, graceful deletion,
//! Priority and DefaultTolerationSeconds admission), reduced to what a scheduler can observe.

use serde_json::{Value, json};

use super::error::ApiError;
use super::obj;
use super::resources::{NAMESPACES, PODS, PRIORITY_CLASSES, RESOURCES, ResourceInfo};
use super::store::State;

/// Namespaces that exist when the server starts, as on a fresh cluster.
pub(crate) const BUILTIN_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Fills server-owned metadata and per-kind defaults of an object about to be created.
/// `raw` skips validation and admission (for malformed-object tests).
pub(crate) fn prepare_create(st: &mut State, res: usize, value: &mut Value, raw: bool) -> Result<(), ApiError> {
    let info = &RESOURCES[res];
    let generate = obj::str_at(value, "/metadata/generateName").unwrap_or_default().to_string();
    let uid = st.next_uid();
    let meta = obj::meta_mut(value)
        .ok_or_else(|| ApiError::BadRequest("object and its metadata must be JSON objects".into()))?;
    meta.remove("resourceVersion");
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    meta.remove("managedFields");
    meta.insert("uid".into(), json!(uid));
    meta.insert("creationTimestamp".into(), json!(obj::now_rfc3339()));
    meta.insert("generation".into(), json!(1));
    if !info.namespaced {
        meta.remove("namespace");
    }
    let name = meta.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    let namespace = meta.get("namespace").and_then(Value::as_str).unwrap_or_default().to_string();
    let name =
        if name.is_empty() && !generate.is_empty() { generate_name(st, res, &namespace, &generate) } else { name };
    obj::set(value, &["metadata", "name"], json!(name));
    set_type(info, value);
    if raw {
        return Ok(());
    }
    if name.is_empty() {
        return Err(ApiError::invalid(info, "", "metadata.name: Required value: name or generateName is required"));
    }
    if !valid_name(&name) {
        return Err(ApiError::invalid(
            info,
            &name,
            format!(
                "metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"
            ),
        ));
    }
    if info.namespaced {
        if namespace.is_empty() {
            return Err(ApiError::BadRequest("the namespace of the object is required".into()));
        }
        if st.entry(NAMESPACES, "", &namespace).is_none() {
            return Err(ApiError::not_found(&RESOURCES[NAMESPACES], &namespace));
        }
    }
    match res {
        PODS => prepare_pod(st, value),
        NAMESPACES => {
            obj::set(value, &["metadata", "labels", "kubernetes.io/metadata.name"], json!(name));
            obj::set(value, &["spec", "finalizers"], json!(["kubernetes"]));
            obj::set(value, &["status"], json!({ "phase": "Active" }));
            Ok(())
        }
        _ if matches!(info.plural, "persistentvolumeclaims" | "persistentvolumes") => {
            obj::set(value, &["status"], json!({ "phase": "Pending" }));
            Ok(())
        }
        _ if info.plural == "resourceclaims" => {
            obj::remove(value, &["status"]);
            Ok(())
        }
        _ => Ok(()),
    }
}

fn set_type(info: &ResourceInfo, value: &mut Value) {
    obj::set(value, &["apiVersion"], json!(info.api_version()));
    obj::set(value, &["kind"], json!(info.kind));
}

fn valid_name(name: &str) -> bool {
    name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.' || b == b':')
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// `generateName` + 5 characters from upstream's alphabet, retried until unused.
fn generate_name(st: &mut State, res: usize, namespace: &str, prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    loop {
        st.seq += 1;
        let mut n = st.seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ st.uid_seed;
        let suffix: String = (0..5)
            .map(|_| {
                let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
                n /= ALPHABET.len() as u64;
                c
            })
            .collect();
        let name = format!("{prefix}{suffix}");
        if st.entry(res, namespace, &name).is_none() {
            return name;
        }
    }
}

/// Pod `PrepareForCreate` + defaulting + Priority / DefaultTolerationSeconds admission.
fn prepare_pod(st: &State, pod: &mut Value) -> Result<(), ApiError> {
    let qos = qos_class(pod);
    obj::set(pod, &["status"], json!({ "phase": "Pending", "qosClass": qos }));
    let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
    if obj::str_at(&spec, "/schedulerName").unwrap_or_default().is_empty() {
        obj::set(pod, &["spec", "schedulerName"], json!("default-scheduler"));
    }
    if spec.get("terminationGracePeriodSeconds").is_none() {
        obj::set(pod, &["spec", "terminationGracePeriodSeconds"], json!(30));
    }
    admit_priority(st, pod, &spec)?;
    add_default_tolerations(pod);
    Ok(())
}

/// Resolves spec.priority from priorityClassName as the Priority admission plugin does.
fn admit_priority(st: &State, pod: &mut Value, spec: &Value) -> Result<(), ApiError> {
    let class_name = obj::str_at(spec, "/priorityClassName").unwrap_or_default();
    let classes = &st.resources[PRIORITY_CLASSES].objects;
    let class = if class_name.is_empty() {
        classes.values().map(|e| &e.value).find(|c| c.get("globalDefault").and_then(Value::as_bool) == Some(true))
    } else {
        Some(st.entry(PRIORITY_CLASSES, "", class_name).map(|e| &e.value).ok_or_else(|| {
            ApiError::Forbidden(format!("pods is forbidden: no PriorityClass with name {class_name} was found"))
        })?)
    };
    let priority = class.and_then(|c| c.get("value")).and_then(Value::as_i64).unwrap_or(0);
    let preemption =
        class.and_then(|c| obj::str_at(c, "/preemptionPolicy")).unwrap_or("PreemptLowerPriority").to_string();
    if let Some(given) = spec.get("priority").and_then(Value::as_i64)
        && given != priority
    {
        return Err(ApiError::Forbidden(format!(
            "pods is forbidden: the integer value of priority ({given}) must not be provided in pod spec; \
             priority admission controller computed {priority} from the given PriorityClass name"
        )));
    }
    obj::set(pod, &["spec", "priority"], json!(priority));
    obj::set(pod, &["spec", "preemptionPolicy"], json!(preemption));
    Ok(())
}

/// DefaultTolerationSeconds: tolerate not-ready / unreachable NoExecute taints for 300 s.
fn add_default_tolerations(pod: &mut Value) {
    let mut tolerations = pod.pointer("/spec/tolerations").and_then(Value::as_array).cloned().unwrap_or_default();
    let before = tolerations.len();
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        let tolerated = tolerations.iter().any(|t| {
            let k = obj::str_at(t, "/key").unwrap_or_default();
            let effect = obj::str_at(t, "/effect").unwrap_or_default();
            (k == key || (k.is_empty() && obj::str_at(t, "/operator") == Some("Exists")))
                && (effect.is_empty() || effect == "NoExecute")
        });
        if !tolerated {
            tolerations
                .push(json!({ "key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300 }));
        }
    }
    if tolerations.len() != before {
        obj::set(pod, &["spec", "tolerations"], Value::Array(tolerations));
    }
}

/// Upstream `GetPodQOS` over cpu and memory of all containers.
fn qos_class(pod: &Value) -> &'static str {
    let containers = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| pod.pointer(&format!("/spec/{k}")).and_then(Value::as_array))
        .flatten();
    let (mut any, mut guaranteed) = (false, true);
    for c in containers {
        let requests = c.pointer("/resources/requests");
        let limits = c.pointer("/resources/limits");
        for res in ["cpu", "memory"] {
            let req = requests.and_then(|r| r.get(res)).and_then(quantity);
            let lim = limits.and_then(|l| l.get(res)).and_then(quantity);
            if req.is_some_and(|q| q > 0.0) || lim.is_some_and(|q| q > 0.0) {
                any = true;
            }
            match (req, lim) {
                (_, None) => guaranteed = false,
                (Some(r), Some(l)) if (r - l).abs() > f64::EPSILON * l.abs().max(1.0) => guaranteed = false,
                _ => {}
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// A resource.Quantity (`500m`, `1Gi`, `2`, `1e3`) as a number; `None` if unparsable.
pub(crate) fn quantity(v: &Value) -> Option<f64> {
    if let Some(n) = v.as_f64() {
        return Some(n);
    }
    let s = v.as_str()?.trim();
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (suffix, mult) in SUFFIXES {
        if let Some(num) = s.strip_suffix(suffix) {
            return num.parse::<f64>().ok().map(|n| n * mult);
        }
    }
    s.parse::<f64>().ok()
}

/// Keeps server-owned metadata of `old` in `new` and bumps generation on spec changes;
/// 409 when `new` carries a resourceVersion other than the stored one.
pub(crate) fn prepare_update(info: &ResourceInfo, old: &Value, new: &mut Value) -> Result<(), ApiError> {
    let name = obj::str_at(old, "/metadata/name").unwrap_or_default();
    let old_rv = obj::str_at(old, "/metadata/resourceVersion").unwrap_or_default();
    let new_rv = obj::str_at(new, "/metadata/resourceVersion").unwrap_or_default();
    if !new_rv.is_empty() && new_rv != old_rv {
        return Err(ApiError::stale(info, name));
    }
    if obj::meta_mut(new).is_none() {
        return Err(ApiError::BadRequest("object and its metadata must be JSON objects".into()));
    }
    for key in [
        "uid",
        "creationTimestamp",
        "namespace",
        "name",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "resourceVersion",
    ] {
        match old.pointer(&format!("/metadata/{key}")) {
            Some(v) => obj::set(new, &["metadata", key], v.clone()),
            None => obj::remove(new, &["metadata", key]).is_some(),
        };
    }
    let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
    let spec_changed = old.get("spec") != new.get("spec");
    obj::set(new, &["metadata", "generation"], json!(if spec_changed { generation + 1 } else { generation }));
    set_type(info, new);
    Ok(())
}

/// Whether an update just removed the last finalizer of an object being deleted, so the
/// store must now delete it (pods also need their grace period to have been cut to 0).
pub(crate) fn finalized(res: usize, value: &Value) -> bool {
    let deleting = value.pointer("/metadata/deletionTimestamp").is_some();
    let finalizers = value.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
    let graceful =
        res == PODS && value.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64) != Some(0);
    deleting && !finalizers && !graceful
}

/// What a DELETE does to an object.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Deletion {
    /// Remove it now.
    Now,
    /// Mark it (deletionTimestamp + grace) and leave it for a kubelet / finalizer owner.
    Mark { grace: i64 },
    /// Already marked with a grace no longer than asked: return it unchanged.
    Unchanged,
}

/// Upstream graceful deletion (`BeforeDelete`): pods bound to a node and not finished honour
/// the grace period (DeleteOptions, else spec.terminationGracePeriodSeconds); objects with
/// finalizers are only marked.
pub(crate) fn deletion(res: usize, value: &Value, grace: Option<i64>) -> Deletion {
    let has_finalizers = value.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
    let current = value.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64);
    let grace = if res == PODS { pod_grace(value, grace) } else { 0 };
    if has_finalizers {
        let marked = value.pointer("/metadata/deletionTimestamp").is_some();
        return if marked { Deletion::Unchanged } else { Deletion::Mark { grace } };
    }
    match current {
        Some(c) if grace >= c => Deletion::Unchanged,
        _ if grace == 0 => Deletion::Now,
        _ => Deletion::Mark { grace },
    }
}

fn pod_grace(pod: &Value, requested: Option<i64>) -> i64 {
    let bound = !obj::str_at(pod, "/spec/nodeName").unwrap_or_default().is_empty();
    let finished = matches!(obj::str_at(pod, "/status/phase"), Some("Succeeded" | "Failed"));
    if !bound || finished {
        return 0;
    }
    let default = pod.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(30);
    requested.unwrap_or(default).max(0)
}

/// The object marked for deletion: deletionTimestamp = now + grace.
pub(crate) fn mark_deleted(value: &Value, grace: i64) -> Value {
    let mut v = value.clone();
    obj::set(&mut v, &["metadata", "deletionTimestamp"], json!(obj::rfc3339_in(grace)));
    obj::set(&mut v, &["metadata", "deletionGracePeriodSeconds"], json!(grace));
    v
}

/// Applies a `Binding` to a pod (upstream `BindingREST.setPodHostAndAnnotations`).
pub(crate) fn bind(pod: &Value, binding: &Value) -> Result<Value, ApiError> {
    let info = &RESOURCES[PODS];
    let name = obj::str_at(pod, "/metadata/name").unwrap_or_default();
    let node = obj::str_at(binding, "/target/name").unwrap_or_default();
    if node.is_empty() {
        return Err(ApiError::invalid(info, name, "target.name: Required value"));
    }
    if let Some(uid) = obj::str_at(binding, "/metadata/uid")
        && !uid.is_empty()
        && Some(uid) != obj::str_at(pod, "/metadata/uid")
    {
        return Err(ApiError::conflict(info, name, format!("Precondition failed: UID in precondition: {uid}")));
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        return Err(ApiError::conflict(
            info,
            name,
            format!("pod {name} is being deleted, cannot be assigned to a host"),
        ));
    }
    if let Some(current) = obj::str_at(pod, "/spec/nodeName").filter(|n| !n.is_empty()) {
        return Err(ApiError::conflict(info, name, format!("pod {name} is already assigned to node \"{current}\"")));
    }
    let mut new = pod.clone();
    obj::set(&mut new, &["spec", "nodeName"], json!(node));
    if let Some(annotations) = binding.pointer("/metadata/annotations").and_then(Value::as_object) {
        for (k, v) in annotations {
            obj::set(&mut new, &["metadata", "annotations", k], v.clone());
        }
    }
    set_condition(
        &mut new,
        json!({ "type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": obj::now_rfc3339() }),
    );
    Ok(new)
}

/// Replaces (or appends) the status condition with the same `type`.
fn set_condition(value: &mut Value, condition: Value) {
    let mut conditions = value.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    let kind = condition.get("type").cloned();
    match conditions.iter_mut().find(|c| c.get("type") == kind.as_ref()) {
        Some(existing) => *existing = condition,
        None => conditions.push(condition),
    }
    obj::set(value, &["status", "conditions"], Value::Array(conditions));
}

/// Objects that exist before the first request: namespaces and the system PriorityClasses.
pub(crate) fn seed(st: &mut State) {
    for ns in BUILTIN_NAMESPACES {
        let mut value = json!({ "metadata": { "name": ns } });
        if prepare_create(st, NAMESPACES, &mut value, false).is_ok() {
            st.write(NAMESPACES, value, super::store::EventType::Added);
        }
    }
    for (name, priority) in [("system-node-critical", 2_000_001_000), ("system-cluster-critical", 2_000_000_000)] {
        let mut value = json!({
            "metadata": { "name": name },
            "value": priority,
            "description": "Used for system critical pods that must not be moved from their current node.",
            "preemptionPolicy": "PreemptLowerPriority",
        });
        if prepare_create(st, PRIORITY_CLASSES, &mut value, false).is_ok() {
            st.write(PRIORITY_CLASSES, value, super::store::EventType::Added);
        }
    }
}
