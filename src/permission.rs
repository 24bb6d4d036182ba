//! [`Permission`] names and [`PermissionSet`]s.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Error returned for a malformed permission name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid permission name {name:?}: must be 1-64 characters of ASCII letters, digits, ':', '.', '_', '-'"
)]
pub struct InvalidPermission {
    /// The rejected name (truncated to 64 characters).
    pub name: String,
}

/// A validated permission name such as `readApplications`: 1–64 characters of
/// ASCII letters, digits, `:`, `.`, `_` and `-`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission(Box<str>);

impl Permission {
    /// Maximum length of a permission name.
    pub const MAX_LEN: usize = 64;

    /// Validates `name`.
    ///
    /// # Errors
    /// [`InvalidPermission`] when the name is empty, longer than 64 or has a
    /// character outside the allowed set.
    ///
    /// ```
    /// use keyward::Permission;
    /// assert!(Permission::new("readApplications").is_ok());
    /// assert!(Permission::new("read apps").is_err());
    /// ```
    pub fn new(name: &str) -> Result<Self, InvalidPermission> {
        if is_valid_name(name) {
            Ok(Self(name.into()))
        } else {
            Err(InvalidPermission {
                name: name.chars().take(Self::MAX_LEN).collect(),
            })
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `readApiKeys`: list and read keys, their events and usage.
    pub fn read_api_keys() -> Self {
        Self("readApiKeys".into())
    }

    /// `writeApiKeys`: create, update, rotate, deactivate and delete keys.
    pub fn write_api_keys() -> Self {
        Self("writeApiKeys".into())
    }

    /// `readAccounts`: list and read the acting account's child accounts.
    pub fn read_accounts() -> Self {
        Self("readAccounts".into())
    }

    /// `writeAccounts`: create child accounts, rename them, change their
    /// permissions and status.
    pub fn write_accounts() -> Self {
        Self("writeAccounts".into())
    }

    /// Whether this is one of the management permissions (`readApiKeys`,
    /// `writeApiKeys`, `readAccounts`, `writeAccounts`). Acting for a
    /// child account, a principal keeps its own management permissions.
    pub fn is_management(&self) -> bool {
        matches!(
            self.as_str(),
            "readApiKeys" | "writeApiKeys" | "readAccounts" | "writeAccounts"
        )
    }
}

/// Whether `name` is a valid permission name (see [`Permission::new`]);
/// `const` so that a name fixed at compile time is checked at compile time.
pub(crate) const fn is_valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > Permission::MAX_LEN {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !(c.is_ascii_alphanumeric() || matches!(c, b':' | b'.' | b'_' | b'-')) {
            return false;
        }
        i += 1;
    }
    true
}

// `Permission` orders, compares and hashes exactly as its name.
impl std::borrow::Borrow<str> for Permission {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Permission {
    type Err = InvalidPermission;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl Serialize for Permission {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// An ordered set of permissions.
///
/// Kept as a sorted slice: sets are small, and a verification checks one
/// name against its principal's set on every request (a scan of a few
/// names is cheaper than a tree walk).
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct PermissionSet(Vec<Permission>);

/// Sets up to this size are searched front to back, larger ones by
/// bisection.
const SCAN_LEN: usize = 8;

impl PermissionSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses and validates every name.
    ///
    /// # Errors
    /// The first [`InvalidPermission`].
    ///
    /// ```
    /// use keyward::PermissionSet;
    /// let set = PermissionSet::parse(["readApiKeys", "writeApiKeys"]).unwrap();
    /// assert_eq!(set.len(), 2);
    /// ```
    pub fn parse<I, S>(names: I) -> Result<Self, InvalidPermission>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        names
            .into_iter()
            .map(|n| Permission::new(n.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(Self::sorted)
    }

    /// The set of `v`'s permissions (sorted, duplicates dropped).
    fn sorted(mut v: Vec<Permission>) -> Self {
        v.sort_unstable();
        v.dedup();
        Self(v)
    }

    /// Where `name` is, or where it would go.
    #[inline]
    fn position(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|p| (*p.0).cmp(name))
    }

    /// Whether `p` is in the set.
    pub fn contains(&self, p: &Permission) -> bool {
        self.contains_name(p.as_str())
    }

    /// Whether the set contains a permission named `name`.
    #[inline]
    pub fn contains_name(&self, name: &str) -> bool {
        if self.0.len() <= SCAN_LEN {
            self.0.iter().any(|p| *p.0 == *name)
        } else {
            self.position(name).is_ok()
        }
    }

    /// Adds `p`; returns whether it was new.
    pub fn insert(&mut self, p: Permission) -> bool {
        match self.position(p.as_str()) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, p);
                true
            }
        }
    }

    /// Whether every permission of `self` is in `other`.
    pub fn is_subset(&self, other: &Self) -> bool {
        self.0.iter().all(|p| other.contains(p))
    }

    /// The permissions in both sets.
    pub fn intersection(&self, other: &Self) -> Self {
        Self(
            self.0
                .iter()
                .filter(|p| other.contains(p))
                .cloned()
                .collect(),
        )
    }

    /// The permissions of `self` missing from `other`.
    pub fn difference(&self, other: &Self) -> Self {
        Self(
            self.0
                .iter()
                .filter(|p| !other.contains(p))
                .cloned()
                .collect(),
        )
    }

    /// Number of permissions.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Permission> {
        self.0.iter()
    }
}

impl<'de> Deserialize<'de> for PermissionSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<Permission>::deserialize(d).map(Self::sorted)
    }
}

impl fmt::Debug for PermissionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.iter()).finish()
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        Self::sorted(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a PermissionSet {
    type Item = &'a Permission;
    type IntoIter = std::slice::Iter<'a, Permission>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for ok in ["readApplications", "a", "x:y.z_w-1", &"a".repeat(64)] {
            assert!(Permission::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "read apps", "é", &"a".repeat(65), "a/b"] {
            assert!(Permission::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn set_algebra() {
        let a = PermissionSet::parse(["a", "b", "c"]).expect("valid");
        let b = PermissionSet::parse(["b", "c", "d"]).expect("valid");
        assert_eq!(
            a.intersection(&b),
            PermissionSet::parse(["b", "c"]).expect("valid")
        );
        assert_eq!(
            a.difference(&b),
            PermissionSet::parse(["a"]).expect("valid")
        );
        assert!(PermissionSet::parse(["b"]).expect("valid").is_subset(&a));
        assert!(!b.is_subset(&a));
        let json = serde_json::to_string(&a).expect("ser");
        assert_eq!(json, r#"["a","b","c"]"#);
        assert!(serde_json::from_str::<PermissionSet>(r#"["bad name"]"#).is_err());
    }
}
