//! Debug output that never shows user contents or secrets.

use std::fmt;

/// Shows a value's kind and size instead of the value.
pub(crate) struct Redacted {
    kind: &'static str,
    len: usize,
}

impl Redacted {
    pub(crate) fn new(kind: &'static str, len: usize) -> Self {
        Self { kind, len }
    }

    /// A secret: only whether it is set.
    pub(crate) fn secret(value: &str) -> &'static str {
        if value.is_empty() {
            "<unset>"
        } else {
            "<redacted>"
        }
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}: {} bytes>", self.kind, self.len)
    }
}
