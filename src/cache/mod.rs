//! In-process caches that make verification fast. Nothing in them is
//! trusted once older than the propagation window.

mod accounts;
mod index;
mod keys;
mod sessions;

pub(crate) use accounts::AccountCache;
pub(crate) use keys::{Extra, Found, KeyCache, KeyEntry, SecretSlot};
pub(crate) use sessions::{SecretRef, SessionCache, SessionEntry};
