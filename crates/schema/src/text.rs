//! Values that many tenants hold alike, kept once while anyone holds them: long texts of
//! collections (email template bodies), and the weak set other shared values use.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A text shared by every holder of the same text. Reads as a `str`; a changed text is a new
/// value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SharedText(Arc<str>);

/// Values many holders keep alike, by hash, held weakly: a value nobody holds any more costs
/// only its slot, and dead slots are swept whenever the map has doubled since the last sweep.
pub struct WeakSet<T: ?Sized> {
    held: HashMap<u64, Vec<Weak<T>>>,
    /// The map's size at which dead slots are swept next.
    sweep_at: usize,
}

/// Slots kept before the first sweep.
const FIRST_SWEEP: usize = 256;

impl<T: ?Sized> Default for WeakSet<T> {
    fn default() -> Self {
        Self {
            held: HashMap::new(),
            sweep_at: FIRST_SWEEP,
        }
    }
}

impl<T: ?Sized> WeakSet<T> {
    /// The value held under `key` that `same` accepts (a hash is not proof of equality).
    pub fn find(&self, key: u64, same: impl Fn(&T) -> bool) -> Option<Arc<T>> {
        self.held
            .get(&key)
            .into_iter()
            .flatten()
            .filter_map(Weak::upgrade)
            .find(|held| same(held))
    }

    /// Keeps `value` under `key`, weakly.
    pub fn insert(&mut self, key: u64, value: &Arc<T>) {
        if self.held.len() >= self.sweep_at {
            self.held.retain(|_, held| {
                held.retain(|w| w.strong_count() > 0);
                !held.is_empty()
            });
            self.sweep_at = (self.held.len() * 2).max(FIRST_SWEEP);
        }
        self.held
            .entry(key)
            .or_default()
            .push(Arc::downgrade(value));
    }
}

/// The hash a [`WeakSet`] keeps `value` under.
pub fn hash_of(value: &(impl Hash + ?Sized)) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// Texts in use.
static TEXTS: LazyLock<Mutex<WeakSet<str>>> = LazyLock::new(Mutex::default);

impl SharedText {
    /// The shared copy of `text`.
    pub fn new(text: &str) -> Self {
        if text.is_empty() {
            return Self::default();
        }
        let key = hash_of(text);
        // Texts are compared whole before one is shared, so a poisoned lock is still usable.
        let mut texts = TEXTS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(same) = texts.find(key, |held| held == text) {
            return Self(same);
        }
        let shared: Arc<str> = Arc::from(text);
        texts.insert(key, &shared);
        Self(shared)
    }
}

impl std::ops::Deref for SharedText {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SharedText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for SharedText {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl From<String> for SharedText {
    fn from(text: String) -> Self {
        Self::new(&text)
    }
}

impl PartialEq<str> for SharedText {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for SharedText {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl Serialize for SharedText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SharedText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Self::new(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_text_is_one_allocation_and_reads_as_itself() {
        let body = "<p>Hello, {APP_NAME}</p> (shared text test)";
        let (a, b) = (SharedText::new(body), SharedText::from(body.to_string()));
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(a, body);
        assert_eq!(&*b, body);
        let other = SharedText::new("<p>Other</p> (shared text test)");
        assert!(!Arc::ptr_eq(&a.0, &other.0));
        assert_ne!(a, other);
    }

    #[test]
    fn a_weak_set_forgets_values_nobody_holds() {
        let mut set = WeakSet::<str>::default();
        let kept: Arc<str> = Arc::from("kept");
        set.insert(hash_of("kept"), &kept);
        for i in 0..FIRST_SWEEP * 2 {
            let gone: Arc<str> = Arc::from(format!("gone {i}").as_str());
            set.insert(hash_of(&*gone), &gone);
        }
        // Swept as it grew: what is left is the live value and the slots since the last sweep.
        assert!(set.held.len() <= FIRST_SWEEP + 1, "{}", set.held.len());
        let found = set.find(hash_of("kept"), |held| held == "kept").unwrap();
        assert!(Arc::ptr_eq(&found, &kept));
        assert!(
            set.find(hash_of("gone 0"), |held| held == "gone 0")
                .is_none()
        );
        // The same hash with another value is not a match.
        assert!(set.find(hash_of("kept"), |held| held == "other").is_none());
    }

    #[test]
    fn it_round_trips_through_json() {
        let text: SharedText = serde_json::from_str(r#""line\none \"quoted\"""#).unwrap();
        assert_eq!(text, "line\none \"quoted\"");
        assert_eq!(
            serde_json::to_string(&text).unwrap(),
            r#""line\none \"quoted\"""#
        );
        let again: SharedText = serde_json::from_str(r#""line\none \"quoted\"""#).unwrap();
        assert!(Arc::ptr_eq(&text.0, &again.0));
    }
}
