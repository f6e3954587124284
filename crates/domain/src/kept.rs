//! A few values kept in memory until they are taken, once: what one step made and the
//! next step of the same process will most likely ask for (the head of a file put whole,
//! for its complete to sniff; a rendition just made, for the request that made it). At
//! most `capacity` are kept, the oldest dropped first; one not found is read the slow way.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Values by key, at most `capacity` of them, each taken once.
#[derive(Debug)]
pub struct Kept<K, V> {
    capacity: usize,
    items: Mutex<VecDeque<(K, V)>>,
}

impl<K: PartialEq, V> Kept<K, V> {
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), items: Mutex::new(VecDeque::with_capacity(capacity)) }
    }

    /// Keeps `value` under `key`, dropping the oldest when full.
    pub fn put(&self, key: K, value: V) {
        let mut items = self.items.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if items.len() >= self.capacity {
            items.pop_front();
        }
        items.push_back((key, value));
    }

    /// The value kept under `key`, which is no longer kept.
    pub fn take(&self, key: &K) -> Option<V> {
        let mut items = self.items.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let at = items.iter().position(|(k, _)| k == key)?;
        items.remove(at).map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::Kept;

    #[test]
    fn a_value_is_taken_once_and_the_oldest_goes_first() {
        let kept = Kept::new(2);
        kept.put("a", 1);
        kept.put("b", 2);
        kept.put("c", 3);
        assert_eq!(kept.take(&"a"), None, "the oldest was dropped");
        assert_eq!(kept.take(&"b"), Some(2));
        assert_eq!(kept.take(&"b"), None, "taken once");
        assert_eq!(kept.take(&"c"), Some(3));
    }
}
