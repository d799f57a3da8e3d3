//! Process-wide string interning for label keys, label values, namespaces and topology keys.
//!
//! Hot paths compare labels millions of times a second; comparing two `u32`s instead of two
//! strings is what makes that cheap. Symbols are stable for the life of the process, but their
//! numeric order is arbitrary: never let a `Sym`'s number decide an outcome a user can see
//! (sort by [`Sym::as_str`] where order matters).

use std::fmt;
use std::sync::OnceLock;

use lasso::{Spur, ThreadedRodeo};

/// An interned string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym(Spur);

fn rodeo() -> &'static ThreadedRodeo {
    static RODEO: OnceLock<ThreadedRodeo> = OnceLock::new();
    RODEO.get_or_init(ThreadedRodeo::new)
}

impl Sym {
    /// Interns `s`, returning the same symbol for equal strings.
    pub fn new(s: &str) -> Sym {
        Sym(rodeo().get_or_intern(s))
    }

    /// The symbol for `s` if it was ever interned; a string never interned cannot be equal to
    /// any label in the cluster, which lets selectors short-cut.
    pub fn get(s: &str) -> Option<Sym> {
        rodeo().get(s).map(Sym)
    }

    /// The interned string.
    pub fn as_str(self) -> &'static str {
        rodeo().resolve(&self.0)
    }
}

impl fmt::Debug for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Sym {
    fn from(s: &str) -> Sym {
        Sym::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_a_symbol() {
        let a = Sym::new("topology.kubernetes.io/zone");
        let b = Sym::new("topology.kubernetes.io/zone");
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "topology.kubernetes.io/zone");
        assert_ne!(a, Sym::new("kubernetes.io/hostname"));
        assert_eq!(Sym::get("topology.kubernetes.io/zone"), Some(a));
        assert_eq!(Sym::get("never-interned-string-xyz"), None);
    }
}
