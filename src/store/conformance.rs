//! The store conformance suite (placeholder; the stores work fills it in).
