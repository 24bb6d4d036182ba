//! In-process caches that make verification fast. Nothing in them is
//! trusted once older than the propagation window.

mod accounts;
mod index;
mod keys;
mod padded;
mod sessions;

pub(crate) use accounts::AccountCache;
pub(crate) use keys::{Extra, KeyCache, KeyEntry, SecretSlot, Warm};
pub(crate) use padded::Padded;
pub(crate) use sessions::{SessionCache, SessionEntry};
