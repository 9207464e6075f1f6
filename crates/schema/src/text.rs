//! Long texts that many tenants' collections hold alike (email template bodies): one
//! allocation per distinct text in use, however many collections hold it.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, Weak};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A text shared by every holder of the same text. Reads as a `str`; a changed text is a new
/// value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SharedText(Arc<str>);

/// Texts in use, by hash. Weak: a text nobody holds any more costs only its slot, and dead
/// slots are swept as the map doubles.
#[derive(Default)]
struct Texts {
    held: HashMap<u64, Vec<Weak<str>>>,
    /// The map's size at which dead slots are swept next.
    sweep_at: usize,
}

static TEXTS: Mutex<Option<Texts>> = Mutex::new(None);

/// Slots kept before the first sweep.
const FIRST_SWEEP: usize = 256;

impl SharedText {
    /// The shared copy of `text`.
    pub fn new(text: &str) -> Self {
        if text.is_empty() {
            return Self::default();
        }
        let key = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            text.hash(&mut h);
            h.finish()
        };
        // Texts are compared whole before one is shared, so a poisoned lock is still usable.
        let mut texts = TEXTS.lock().unwrap_or_else(|p| p.into_inner());
        let texts = texts.get_or_insert_with(Texts::default);
        if let Some(same) = texts
            .held
            .get(&key)
            .into_iter()
            .flatten()
            .filter_map(Weak::upgrade)
            .find(|held| **held == *text)
        {
            return Self(same);
        }
        if texts.held.len() >= texts.sweep_at.max(FIRST_SWEEP) {
            texts.held.retain(|_, held| {
                held.retain(|w| w.strong_count() > 0);
                !held.is_empty()
            });
            texts.sweep_at = texts.held.len() * 2;
        }
        let shared: Arc<str> = Arc::from(text);
        texts
            .held
            .entry(key)
            .or_default()
            .push(Arc::downgrade(&shared));
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
