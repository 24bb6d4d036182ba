//! The store conformance suite on [`MemoryStore`].

use keyward::MemoryStore;

keyward::store_conformance_tests!(async { MemoryStore::new() });
