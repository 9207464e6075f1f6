//! A database's data version: a number its writer replaces after every commit, before the
//! commit is acknowledged to anyone, drawn from one sequence for the whole process so that no
//! two databases (nor two opens of one file) ever show the same value.
//!
//! A reader that reads the version before its snapshot starts, and later finds it unchanged,
//! knows that nothing was committed on that handle in between. Extra changes are harmless (a
//! cache keyed on the version only misses); a missing one is not, so every place that ends a
//! write on the writer connection changes it: the group commit, idle work (ad-hoc SQL run
//! alone, checkpoints), and each step and the end of a held transaction.

use std::sync::atomic::{AtomicU64, Ordering};

/// The next value handed out, process-wide; 0 is never one.
static NEXT: AtomicU64 = AtomicU64::new(1);

/// One database's current data version.
#[derive(Debug)]
pub(crate) struct DataVersion(AtomicU64);

impl DataVersion {
    /// A version no other database of this process has had.
    pub(crate) fn new() -> Self {
        Self(AtomicU64::new(NEXT.fetch_add(1, Ordering::SeqCst)))
    }

    /// The current value.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Replaces the value with one never seen before. Call after a commit has returned and
    /// before anyone learns of it.
    pub(crate) fn bump(&self) {
        self.0
            .store(NEXT.fetch_add(1, Ordering::SeqCst), Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_never_shared_or_repeated() {
        let a = DataVersion::new();
        let b = DataVersion::new();
        assert_ne!(a.get(), b.get());
        let before = a.get();
        a.bump();
        assert_ne!(a.get(), before);
        assert_ne!(a.get(), b.get());
        assert_ne!(a.get(), 0);
    }
}
