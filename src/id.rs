//! Identifier newtypes: [`AccountId`], [`AppId`], [`KeyId`], [`SessionId`].
//!
//! Ids are public (they appear in logs, URLs and audit events) and are stored
//! inline, so they are `Copy` and never allocate.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::inline_str::InlineStr;

/// Characters allowed in any id: ASCII letters, digits, `_`, `-`, `.`, `:`.
fn id_char_ok(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':')
}

/// Error returned when a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: must be 1-{max} characters of ASCII letters, digits, '_', '-', '.', ':'")]
pub struct InvalidId {
    kind: &'static str,
    max: usize,
}

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal, $storage:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub struct $name(InlineStr<$storage>);

        // By hand, to inline it always: the key cache hashes an id on
        // every verification.
        impl std::hash::Hash for $name {
            #[inline(always)]
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.0.hash(state);
            }
        }

        impl $name {
            /// Maximum length in bytes.
            pub const MAX_LEN: usize = $max;

            /// Validates and wraps `s`.
            ///
            /// # Errors
            /// [`InvalidId`] when `s` is empty, too long or has a character
            /// outside ASCII letters, digits, `_`, `-`, `.`, `:`.
            pub fn new(s: &str) -> Result<Self, InvalidId> {
                let err = InvalidId { kind: $kind, max: $max };
                if s.is_empty() || s.len() > $max || !s.bytes().all(id_char_ok) {
                    return Err(err);
                }
                InlineStr::new(s).map(Self).ok_or(err)
            }

            /// Wraps an id whose characters the caller already validated
            /// (id characters only), without checking them again.
            #[inline]
            #[allow(dead_code)]
            pub(crate) fn from_valid(s: &[u8]) -> Option<Self> {
                if s.is_empty() || s.len() > $max {
                    return None;
                }
                InlineStr::from_checked_ascii(s).map(Self)
            }

            /// Wraps ASCII bytes whose characters the caller already validated.
            #[inline]
            #[allow(dead_code)]
            pub(crate) fn from_valid_bytes(b: &[u8]) -> Option<Self> {
                if b.is_empty() || b.len() > $max {
                    return None;
                }
                InlineStr::from_ascii(b).map(Self)
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.as_str())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

define_id!(
    /// Identifies an account (a tenant). Generated as `acct_<17 base62>` by
    /// [`Keyward::create_account`](crate::Keyward::create_account), or chosen
    /// by the application (for example its own tenant id), up to 47 characters.
    AccountId, "account id", 47, 48
);
define_id!(
    /// Public identifier of an API key, `<prefix>_<17 base62>` (101 random
    /// bits). Not a secret: it names the key in URLs, logs and audit events.
    KeyId, "key id", 31, 32
);
impl KeyId {
    /// The id folded into one word (see `InlineStr::fold`): a per-key value
    /// that stays the same across re-reads, cheap on the warm path.
    #[inline]
    pub(crate) fn fold(&self) -> u64 {
        self.0.fold()
    }
}

define_id!(
    /// Identifies a session, `<prefix>_ses_<17 base62>`. Not a secret: the
    /// bearer token is.
    SessionId, "session id", 31, 32
);
define_id!(
    /// Public identifier of an application (a group of keys with a title),
    /// `app_<17 base62>`. Not a secret.
    AppId, "application id", 31, 32
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates() {
        assert!(KeyId::new("kw_abc").is_ok());
        assert!(KeyId::new("").is_err());
        assert!(KeyId::new("kw abc").is_err());
        assert!(KeyId::new(&"a".repeat(32)).is_err());
        assert!(AccountId::new(&"a".repeat(47)).is_ok());
        let id = AccountId::new("acct_1").expect("valid");
        assert_eq!(serde_json::to_string(&id).expect("ser"), "\"acct_1\"");
        let back: AccountId = serde_json::from_str("\"acct_1\"").expect("de");
        assert_eq!(back, id);
        assert!(serde_json::from_str::<AccountId>("\"bad id\"").is_err());
        assert_eq!(format!("{id:?}"), "AccountId(\"acct_1\")");
    }
}
