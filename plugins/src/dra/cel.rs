//! CEL device selectors (placeholder until the CEL environment lands).

use std::sync::Arc;

/// A compiled CEL selector expression.
#[derive(Debug)]
pub struct Selector {
    expression: Arc<str>,
}

/// Why an expression does not compile or evaluate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CelError(pub String);

impl Selector {
    /// Compiles `expression`.
    pub fn compile(expression: &str) -> Result<Selector, CelError> {
        Ok(Selector { expression: Arc::from(expression) })
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Whether `device` satisfies the expression.
    pub fn matches(&self, _device: &crate::dra::model::Device) -> Result<bool, CelError> {
        Ok(self.expression.trim() == "true")
    }
}
