//! `Lenient<K>`: valid objects decode, malformed ones are named and explained, in list pages
//! and in watch events of either key order, and never by a slower path than needed.

use k8s_openapi::api::core::v1::Pod;
use kube::Resource;
use kube::core::{ObjectList, WatchEvent};
use serde::Deserialize;
use serde_json::json;

use super::lenient::Lenient;

fn good_pod(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default", "resourceVersion": "7"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

/// `spec.containers` must be a list.
fn bad_pod(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "team-a", "resourceVersion": "8"},
           "spec": {"containers": "oops"}})
}

fn decoded(obj: Lenient<Pod>) -> Pod {
    match obj {
        Lenient::Decoded(p) => p,
        Lenient::Malformed { meta, error } => panic!("{meta:?} did not decode: {error}"),
    }
}

fn malformed(obj: Lenient<Pod>) -> (Option<String>, Option<String>, String) {
    match obj {
        Lenient::Decoded(p) => panic!("{:?} decoded", p.metadata.name),
        Lenient::Malformed { meta, error } => (meta.namespace, meta.name, error),
    }
}

/// What the old decoding (through a `Value`) reported for [`bad_pod`].
/// The report for `bad_pod` read through a `Value` (the slow path): the field, then serde's
/// message.
fn value_error() -> String {
    let serde = serde_json::from_value::<Pod>(bad_pod("x")).err().map(|e| e.to_string()).unwrap_or_default();
    format!("spec.containers: {serde}")
}

#[test]
fn a_valid_pod_decodes() {
    let pod = decoded(serde_json::from_str(&good_pod("p").to_string()).unwrap());
    assert_eq!(pod.metadata.name.as_deref(), Some("p"));
    assert_eq!(pod.spec.map(|s| s.containers.len()), Some(1));
}

#[test]
fn a_pod_with_a_bad_field_is_named_and_explained() {
    let obj: Lenient<Pod> = serde_json::from_str(&bad_pod("bad").to_string()).unwrap();
    assert_eq!(obj.meta().resource_version.as_deref(), Some("8"), "the watcher resumes from it");
    let (namespace, name, error) = malformed(obj);
    assert_eq!((namespace.as_deref(), name.as_deref()), (Some("team-a"), Some("bad")));
    assert!(error.starts_with("spec.containers: "), "the message names the field: {error}");
    assert!(error.contains("invalid type: string \"oops\", expected a sequence"), "{error}");
    assert_eq!(error, value_error(), "the same message as decoding through a Value");
}

#[test]
fn malformed_metadata_still_names_the_object_or_at_least_does_not_fail() {
    let mut pod = bad_pod("bad");
    pod["metadata"]["labels"] = json!(42);
    let obj: Lenient<Pod> = serde_json::from_str(&pod.to_string()).unwrap();
    assert_eq!(obj.meta().resource_version.as_deref(), Some("8"));
    let (namespace, name, _) = malformed(obj);
    assert_eq!((namespace.as_deref(), name.as_deref()), (Some("team-a"), Some("bad")));
    for nameless in [json!({"metadata": {"name": 1}}), json!({"metadata": "x"}), json!(null), json!([1, 2])] {
        let (namespace, name, error) = malformed(serde_json::from_str(&nameless.to_string()).unwrap());
        assert_eq!((namespace, name), (None, None), "{nameless}");
        assert!(!error.is_empty());
    }
}

#[test]
fn watch_events_decode_whichever_key_comes_first() {
    for (what, pod) in [("good", good_pod("p")), ("bad", bad_pod("p"))] {
        let type_first = format!(r#"{{"type":"ADDED","object":{pod}}}"#);
        let object_first = format!(r#"{{"object":{pod},"type":"ADDED"}}"#);
        let [a, b] = [type_first, object_first].map(|line| match serde_json::from_str(&line).unwrap() {
            WatchEvent::<Lenient<Pod>>::Added(obj) => obj,
            other => panic!("{other:?}"),
        });
        if what == "good" {
            assert_eq!(decoded(a), decoded(b));
        } else {
            let (a, b) = (malformed(a), malformed(b));
            assert_eq!(a, b, "the same report either way");
            assert_eq!(a.2, value_error());
        }
    }
}

#[test]
fn a_list_page_with_a_bad_item_keeps_the_others() {
    let page = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "9"},
                      "items": [good_pod("a"), bad_pod("b"), good_pod("c")]});
    let list: ObjectList<Lenient<Pod>> = serde_json::from_str(&page.to_string()).unwrap();
    assert_eq!(list.metadata.resource_version.as_deref(), Some("9"));
    let [a, b, c]: [Lenient<Pod>; 3] = list.items.try_into().unwrap();
    assert_eq!(decoded(a).metadata.name.as_deref(), Some("a"));
    assert_eq!(malformed(b).1.as_deref(), Some("b"));
    assert_eq!(decoded(c).metadata.name.as_deref(), Some("c"));
}

#[test]
fn it_is_watched_as_what_it_wraps() {
    assert_eq!(Lenient::<Pod>::url_path(&(), Some("default")), Pod::url_path(&(), Some("default")));
    assert_eq!(Lenient::<Pod>::kind(&()), "Pod");
    assert_eq!(Lenient::<Pod>::api_version(&()), "v1");
}

/// A `K` that records which deserializer it was read from.
#[derive(Clone, Debug)]
struct Probe(&'static str);

impl<'de> Deserialize<'de> for Probe {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Probe(std::any::type_name::<D>()))
    }
}

fn read_from(line: &str) -> &'static str {
    match serde_json::from_str::<WatchEvent<Lenient<Probe>>>(line).unwrap() {
        WatchEvent::Added(Lenient::Decoded(Probe(d))) => d,
        other => panic!("{other:?}"),
    }
}

/// The fast path rests on serde_json's raw-value token, which it does not export: if that ever
/// changes, objects still decode (through a `Value`) and this test says so.
#[test]
fn objects_are_read_from_their_text_where_it_is_at_hand() {
    let type_first = read_from(r#"{"type":"ADDED","object":{"metadata":{"name":"p"}}}"#);
    assert!(type_first.starts_with("&mut serde_json::de::Deserializer"), "{type_first}");
    let object_first = read_from(r#"{"object":{"metadata":{"name":"p"}},"type":"ADDED"}"#);
    assert!(object_first.contains("Value"), "{object_first}");
    let list: ObjectList<Lenient<Probe>> = serde_json::from_str(r#"{"metadata":{},"items":[{}]}"#).unwrap();
    assert!(
        matches!(&list.items[..], [Lenient::Decoded(Probe(d))] if d.starts_with("&mut serde_json::de::Deserializer"))
    );
}
