//! In-process caches that make verification fast. Nothing in them is
//! trusted once older than the propagation window, unless a change feed
//! vouches that nothing it holds has changed since ([`Vouch`]).

mod accounts;
mod keys;
mod sessions;
mod table;
mod vouch;

pub(crate) use accounts::{AccountCache, CachedAccount};
pub(crate) use keys::{Cached, Extra, Found, KeyCache, KeyEntry, LoadedKey, SecretSlot};
pub(crate) use sessions::{SecretRef, SessionCache, SessionEntry};
pub(crate) use vouch::Vouch;
