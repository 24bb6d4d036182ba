//! Branch hints for the verification hot path.

/// Marks the branch that calls it as rarely taken: the compiler then lays
/// the common path out contiguously and moves the rare one aside, so a
/// warm verification touches fewer instruction-cache lines (on a server,
/// the kernel's network path evicts them between requests). What
/// `std::hint::cold_path` does from Rust 1.95, for older compilers.
#[cold]
#[inline(never)]
pub(crate) fn cold_path() {}
