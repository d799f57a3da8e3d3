//! Errors from ingesting Kubernetes objects: every one names the object and the field (or the
//! file and document) so that a person can find and fix the input.

use std::fmt;

use tessera_plugins::quantity::QuantityError;
use tessera_plugins::resources::ResourceError;
use thiserror::Error;

/// An object, as messages name it: `Pod default/web-1`, `Node node-7`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    /// The kind (`Pod`, `Node`, `PriorityClass`, ...).
    pub kind: &'static str,
    /// The namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// The name (`<unnamed>` when the object has none, or an empty one).
    pub name: String,
}

impl ObjectRef {
    /// A cluster-scoped object.
    pub fn cluster(kind: &'static str, name: Option<&str>) -> ObjectRef {
        let name = name.filter(|n| !n.is_empty()).unwrap_or("<unnamed>");
        ObjectRef { kind, namespace: None, name: name.to_string() }
    }

    /// A namespaced object.
    pub fn namespaced(kind: &'static str, namespace: &str, name: Option<&str>) -> ObjectRef {
        ObjectRef { namespace: Some(namespace.to_string()), ..ObjectRef::cluster(kind, name) }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// What is wrong with one field.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FieldProblem {
    /// A resource quantity that does not parse or does not fit.
    #[error("{0}")]
    Quantity(#[from] QuantityError),
    /// A resource name that the process has no slot left for.
    #[error("{0}")]
    Resource(#[from] ResourceError),
    /// A field that must be set is not.
    #[error("required field is missing")]
    Missing,
    /// A value outside the fixed set upstream accepts (an operator, an effect, a policy).
    #[error("unsupported value {value:?}: supported values: {supported}")]
    Unsupported {
        /// The value found.
        value: String,
        /// The accepted values, for the message.
        supported: &'static str,
    },
    /// A value that breaks an upstream validation rule.
    #[error("invalid value {value:?}: {reason}")]
    Invalid {
        /// The value found.
        value: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A number outside the range accepted (upstream's, or Tessera's own cap such as
    /// `MAX_MIN_COUNT`).
    #[error("must be between {min} and {max}, got {got}")]
    OutOfRange {
        /// The least value accepted.
        min: i64,
        /// The greatest value accepted.
        max: i64,
        /// The value found.
        got: i64,
    },
    /// A number below the least value accepted, with no upper bound (a timeout).
    #[error("must be greater than or equal to {min}, got {got}")]
    TooSmall {
        /// The least value accepted.
        min: i64,
        /// The value found.
        got: i64,
    },
    /// A combination of fields (or a list length) that breaks an upstream validation rule,
    /// where no single value is at fault: the message is the rule.
    #[error("{0}")]
    Rule(&'static str),
    /// A value that conflicts with the one an object the pod names would add (the
    /// `scheduling.nodeSelector` of its RuntimeClass, which admission merges in). Boxed: it is
    /// rare, and every conversion's error carries this enum.
    #[error("{0}")]
    Conflict(Box<Conflict>),
    /// A malformed `tessera.io/gpu-topology` annotation.
    #[error("{0}")]
    Wiring(#[from] tessera_plugins::gpu_wiring::WiringError),
    /// A reference to an object that is not known (a PriorityClass, a RuntimeClass).
    #[error("no {kind} named {name:?}")]
    NotFound {
        /// The kind referred to.
        kind: &'static str,
        /// The name referred to.
        name: String,
    },
}

/// See [`FieldProblem::Conflict`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{value:?} conflicts with {kind} {name}'s {field} {other:?}")]
pub struct Conflict {
    /// The pod's value.
    pub value: String,
    /// The kind of the object adding the other value.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// Its field holding the other value.
    pub field: String,
    /// The value it adds.
    pub other: String,
}

/// A problem at a field path, not yet attached to its object: conversion helpers return it,
/// and the entry points (`node`, `pod`) attach the object once, rather than threading the
/// object's identity through every helper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field path, as upstream validation prints it (`spec.containers[0].image`).
    pub field: String,
    /// What is wrong.
    pub problem: FieldProblem,
}

impl FieldError {
    /// A problem at `field`.
    pub fn new(field: impl Into<String>, problem: impl Into<FieldProblem>) -> FieldError {
        FieldError { field: field.into(), problem: problem.into() }
    }

    /// `value` is not one of `supported`.
    pub fn unsupported(field: impl Into<String>, value: &str, supported: &'static str) -> FieldError {
        FieldError::new(field, FieldProblem::Unsupported { value: value.to_string(), supported })
    }

    /// `value` breaks the rule `reason`.
    pub fn invalid(field: impl Into<String>, value: impl fmt::Display, reason: &'static str) -> FieldError {
        FieldError::new(field, FieldProblem::Invalid { value: value.to_string(), reason })
    }

    /// Attaches the object the field belongs to.
    pub fn on(self, object: ObjectRef) -> IngestError {
        IngestError::Field { object: Box::new(object), field: self.field, problem: self.problem }
    }
}

/// Where in a YAML file a document is: `document 3`, `document 2, item 5 (Pod default/web-1)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DocLocation {
    /// The document's position in the file, from 1.
    pub document: usize,
    /// The item's position in a `kind: List` document, from 1.
    pub item: Option<usize>,
    /// The object's kind, when the document says.
    pub kind: Option<String>,
    /// `namespace/name` or `name`, when the document says.
    pub name: Option<String>,
}

impl fmt::Display for DocLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}", self.document)?;
        if let Some(item) = self.item {
            write!(f, ", item {item}")?;
        }
        match (&self.kind, &self.name) {
            (Some(kind), Some(name)) => write!(f, " ({kind} {name})"),
            (Some(kind), None) => write!(f, " ({kind})"),
            (None, Some(name)) => write!(f, " ({name})"),
            (None, None) => Ok(()),
        }
    }
}

/// Why an object or a file could not be ingested. Object and document identities are boxed to
/// keep `Result<_, IngestError>` small on the happy path.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum IngestError {
    /// A field of an object is missing or invalid.
    #[error("{object}: {field}: {problem}")]
    Field {
        /// The object.
        object: Box<ObjectRef>,
        /// The field path (`spec.containers[0].resources.requests.cpu`).
        field: String,
        /// What is wrong.
        problem: FieldProblem,
    },
    /// A document of a YAML file is not valid YAML.
    #[error("{file}: {location}: not valid YAML: {message}")]
    Yaml {
        /// The file, as the caller named it.
        file: String,
        /// The document.
        location: Box<DocLocation>,
        /// The parser's message.
        message: String,
    },
    /// A YAML document is not a Kubernetes object of its kind (no `kind`, a wrong shape, a
    /// field of the wrong type).
    #[error("{file}: {location}: {message}")]
    Document {
        /// The file, as the caller named it.
        file: String,
        /// The document (and item, and object when known).
        location: Box<DocLocation>,
        /// What is wrong.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_name_kind_object_and_path() {
        let e = FieldError::new("spec.containers[0].resources.requests.cpu", QuantityError::Syntax("abc".into()))
            .on(ObjectRef::namespaced("Pod", "default", Some("web-1")));
        let text = e.to_string();
        assert!(
            text.starts_with(
                "Pod default/web-1: spec.containers[0].resources.requests.cpu: quantity \"abc\" is not a valid Kubernetes quantity"
            ),
            "{text}"
        );
        let e = FieldError::new("metadata.name", FieldProblem::Missing).on(ObjectRef::cluster("Node", None));
        assert_eq!(e.to_string(), "Node <unnamed>: metadata.name: required field is missing");
    }

    #[test]
    fn document_locations_read_naturally() {
        let loc = DocLocation { document: 2, item: Some(5), kind: Some("Pod".into()), name: Some("ns/a".into()) };
        assert_eq!(loc.to_string(), "document 2, item 5 (Pod ns/a)");
        assert_eq!(DocLocation { document: 3, ..DocLocation::default() }.to_string(), "document 3");
    }
}
