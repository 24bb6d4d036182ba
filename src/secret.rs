//! [`Secret`]: a credential shown once, redacted everywhere else.

use std::fmt;

use zeroize::Zeroizing;

/// A secret credential (an API-key secret or a session token).
///
/// `Debug` and `Display` print `[redacted]`; the memory is zeroized on drop;
/// it does not implement `Serialize`. Read it with
/// [`expose`](Self::expose) exactly where it must leave the process (the one
/// response that shows it to its owner).
///
/// ```
/// let s = keyward::Secret::from("kw_sk_hunter2".to_string());
/// assert_eq!(format!("{s:?} {s}"), "Secret([redacted]) [redacted]");
/// assert_eq!(s.expose(), "kw_sk_hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// The secret's text. Every call site is a place where the secret leaves
    /// keyward's custody; keep them few.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(Zeroizing::new(s))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
