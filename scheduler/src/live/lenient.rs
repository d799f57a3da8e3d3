//! [`Lenient<K>`]: a watched object that decodes as `K` or, failing that, as just enough of its
//! metadata to name it, so that one malformed object is reported and skipped instead of failing
//! the list page or the watch event it came in.
//!
//! `K` is decoded straight from the response text, with no tree in between. serde_json hands a
//! type that asks for its raw-value token the object's text as it stands in the response (what
//! `Box<RawValue>` gets, minus the copy), and `K` is read from that text; only a malformed
//! object is read a second time, for its metadata. Where the text is not at hand the object is
//! read into a `serde_json::Value` first and `K` decoded from that: slower, same result. That
//! happens for a watch event whose `object` comes before its `type` (serde buffers the object
//! before it knows the variant; kube-apiserver sends `type` first) and for any deserializer
//! other than serde_json.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::Deserialize;
use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::Value;

/// An object of kind `K` as the API server sent it.
#[derive(Clone, Debug)]
pub enum Lenient<K> {
    /// It decoded as `K`.
    Decoded(K),
    /// It did not.
    Malformed {
        /// Its metadata as far as it decodes: all of it; or else name, namespace and
        /// resourceVersion (the watcher needs the latter to resume); or else nothing. Boxed:
        /// the rare case should not make every decoded object's slot bigger.
        meta: Box<ObjectMeta>,
        /// serde's message, which says what was found and what the field should hold.
        error: String,
    },
}

impl<K: DeserializeOwned> Lenient<K> {
    /// Decodes one object from its JSON text.
    pub fn from_json(text: &str) -> Self {
        match serde_json::from_str(text) {
            Ok(k) => Lenient::Decoded(k),
            Err(e) => {
                let mut de = serde_json::Deserializer::from_str(text);
                let path = serde_path_to_error::deserialize::<_, K>(&mut de).err().map(|e| e.path().to_string());
                Lenient::Malformed { meta: Box::new(identify_json(text)), error: message(&e, path) }
            }
        }
    }

    /// Decodes one object that was read as a `Value`.
    pub fn from_value(value: &Value) -> Self {
        match K::deserialize(value) {
            Ok(k) => Lenient::Decoded(k),
            Err(e) => {
                let path = serde_path_to_error::deserialize::<_, K>(value).err().map(|e| e.path().to_string());
                Lenient::Malformed { meta: Box::new(identify_value(value)), error: message(&e, path) }
            }
        }
    }
}

/// serde's message, after the field it is about (`spec.containers: invalid type: ...`), which
/// the generated types' messages do not name: the path comes from decoding the object once more
/// with `serde_path_to_error`, a cost only malformed objects pay. serde_json's " at line L column
/// C", which only text has, is dropped: the same message however the object was read.
fn message(e: &serde_json::Error, path: Option<String>) -> String {
    let mut text = e.to_string();
    if e.line() > 0 {
        let position = format!(" at line {} column {}", e.line(), e.column());
        if text.ends_with(&position) {
            text.truncate(text.len() - position.len());
        }
    }
    match path.filter(|p| p != ".") {
        Some(path) => format!("{path}: {text}"),
        None => text,
    }
}

/// Any object's `metadata`, ignoring everything else in it.
#[derive(Deserialize)]
struct Metadata<M> {
    #[serde(default)]
    metadata: M,
}

/// The metadata that names an object, for when the rest of its metadata is malformed too.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Identity {
    name: Option<String>,
    namespace: Option<String>,
    resource_version: Option<String>,
}

impl From<Identity> for ObjectMeta {
    fn from(id: Identity) -> Self {
        ObjectMeta {
            name: id.name,
            namespace: id.namespace,
            resource_version: id.resource_version,
            ..Default::default()
        }
    }
}

/// What names a malformed object given as text.
fn identify_json(text: &str) -> ObjectMeta {
    serde_json::from_str::<Metadata<ObjectMeta>>(text)
        .map(|m| m.metadata)
        .or_else(|_| serde_json::from_str::<Metadata<Identity>>(text).map(|m| m.metadata.into()))
        .unwrap_or_default()
}

/// What names a malformed object given as a `Value`.
fn identify_value(value: &Value) -> ObjectMeta {
    Metadata::<ObjectMeta>::deserialize(value)
        .map(|m| m.metadata)
        .or_else(|_| Metadata::<Identity>::deserialize(value).map(|m| m.metadata.into()))
        .unwrap_or_default()
}

/// The newtype-struct name by which serde_json hands over a value's raw text instead of its
/// contents (what `Box<RawValue>` asks for; serde_json's `raw::TOKEN`, which is not exported).
/// A deserializer that does not know it reads it as any newtype struct, which
/// [`LenientVisitor::visit_newtype_struct`] takes as a `Value`: should serde_json ever change
/// it, decoding gets slower, not wrong (a unit test says which path is taken).
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

impl<'de, K: DeserializeOwned> Deserialize<'de> for Lenient<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_newtype_struct(RAW_VALUE_TOKEN, LenientVisitor(PhantomData))
    }
}

struct LenientVisitor<K>(PhantomData<K>);

impl<'de, K: DeserializeOwned> Visitor<'de> for LenientVisitor<K> {
    type Value = Lenient<K>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes object")
    }

    /// serde_json's answer to the token is a map of one entry: the token, then the raw text.
    /// Any other map is the object itself, from a deserializer that reads newtype structs as
    /// their content.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        match map.next_key::<Key>()? {
            Some(Key::RawText) => map.next_value_seed(RawText(PhantomData)),
            Some(Key::Field(first)) => Ok(Lenient::from_value(&rest_of_object(first, map)?)),
            None => Ok(Lenient::from_value(&Value::Object(serde_json::Map::new()))),
        }
    }

    /// What every deserializer but serde_json does (serde's buffered content among them).
    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        Value::deserialize(deserializer).map(|v| Lenient::from_value(&v))
    }
}

/// The object whose first key was `first`, read on from `map`.
fn rest_of_object<'de, A: MapAccess<'de>>(first: String, mut map: A) -> Result<Value, A::Error> {
    let mut object = serde_json::Map::new();
    object.insert(first, map.next_value()?);
    while let Some((key, value)) = map.next_entry::<String, Value>()? {
        object.insert(key, value);
    }
    Ok(Value::Object(object))
}

/// A map's first key: serde_json's raw-value token, or an object's field name.
enum Key {
    RawText,
    Field(String),
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E>(self, key: &str) -> Result<Key, E> {
        Ok(if key == RAW_VALUE_TOKEN { Key::RawText } else { Key::Field(key.to_owned()) })
    }
}

/// Decodes `K` from the raw text that follows the token.
struct RawText<K>(PhantomData<K>);

impl<'de, K: DeserializeOwned> DeserializeSeed<'de> for RawText<K> {
    type Value = Lenient<K>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<K: DeserializeOwned> Visitor<'_> for RawText<K> {
    type Value = Lenient<K>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object's JSON text")
    }

    /// Borrowed text (from a string being parsed) and owned text (from a reader or a `Value`)
    /// both land here.
    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Lenient::from_json(text))
    }
}

/// `K`'s API coordinates, so that an `Api<Lenient<K>>` lists and watches what `Api<K>` would.
impl<K: Resource<DynamicType = ()>> Resource for Lenient<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }

    fn api_version(dt: &()) -> Cow<'_, str> {
        K::api_version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn metadata_api() -> bool {
        K::metadata_api()
    }

    fn url_path(dt: &(), namespace: Option<&str>) -> String {
        K::url_path(dt, namespace)
    }

    fn meta(&self) -> &ObjectMeta {
        match self {
            Lenient::Decoded(k) => k.meta(),
            Lenient::Malformed { meta, .. } => meta,
        }
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Lenient::Decoded(k) => k.meta_mut(),
            Lenient::Malformed { meta, .. } => meta,
        }
    }
}
