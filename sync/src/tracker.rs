//! Marker tracking for entries applied out of order: several entries of a
//! log are applied at once, but the persisted marker may only move past an
//! entry once it and every entry before it are done (RGW's marker tracker).
//! Entries of one object key are applied one at a time, in log order, so a
//! delete never overtakes the write it follows.

use std::collections::{BTreeMap, HashMap, VecDeque};

/// Where a log entry stands in a shard's pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Running,
    Done,
}

/// The in-flight entries of one log shard, by position.
#[derive(Debug, Default)]
pub struct MarkerTracker {
    /// Position → state, for entries started and not yet folded into `marker`.
    slots: BTreeMap<String, Slot>,
    /// Highest position such that it and everything before it is done.
    marker: String,
}

impl MarkerTracker {
    /// Starts after `marker` (the persisted one).
    pub fn new(marker: impl Into<String>) -> Self {
        Self {
            slots: BTreeMap::new(),
            marker: marker.into(),
        }
    }

    /// Records that the entry at `pos` is being applied. Positions must be
    /// started in increasing order.
    pub fn start(&mut self, pos: &str) {
        debug_assert!(
            self.slots
                .keys()
                .next_back()
                .is_none_or(|last| last.as_str() < pos),
            "positions start in order"
        );
        self.slots.insert(pos.to_string(), Slot::Running);
    }

    /// Records that the entry at `pos` was applied; returns the new marker
    /// when it moved.
    pub fn finish(&mut self, pos: &str) -> Option<String> {
        if let Some(s) = self.slots.get_mut(pos) {
            *s = Slot::Done;
        }
        let mut moved = None;
        while let Some((p, Slot::Done)) = self.slots.first_key_value().map(|(p, s)| (p.clone(), *s))
        {
            self.slots.remove(&p);
            moved = Some(p);
        }
        if let Some(p) = &moved {
            self.marker = p.clone();
        }
        moved
    }

    /// The marker to persist: everything up to it is applied.
    pub fn marker(&self) -> &str {
        &self.marker
    }

    /// Entries started and not yet applied.
    pub fn in_flight(&self) -> usize {
        self.slots.values().filter(|s| **s == Slot::Running).count()
    }

    /// Nothing started is still pending.
    pub fn is_idle(&self) -> bool {
        self.slots.is_empty()
    }
}

/// Serializes entries per object key: an entry whose key already has one in
/// flight waits behind it, in log order.
#[derive(Debug, Default)]
pub struct KeyQueue<T> {
    busy: HashMap<String, VecDeque<T>>,
}

impl<T> KeyQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            busy: HashMap::new(),
        }
    }

    /// Offers `item` for `key`: returned back when it may run now, or kept
    /// until the key's running entry finishes.
    pub fn offer(&mut self, key: &str, item: T) -> Option<T> {
        match self.busy.get_mut(key) {
            Some(q) => {
                q.push_back(item);
                None
            }
            None => {
                self.busy.insert(key.to_string(), VecDeque::new());
                Some(item)
            }
        }
    }

    /// The running entry of `key` finished: the next one for that key, if any,
    /// may run now.
    pub fn done(&mut self, key: &str) -> Option<T> {
        let q = self.busy.get_mut(key)?;
        match q.pop_front() {
            Some(next) => Some(next),
            None => {
                self.busy.remove(key);
                None
            }
        }
    }

    /// Keys with an entry running.
    pub fn busy_keys(&self) -> usize {
        self.busy.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_moves_only_over_a_done_prefix() {
        let mut t = MarkerTracker::new("00");
        for p in ["01", "02", "03"] {
            t.start(p);
        }
        assert_eq!(t.finish("02"), None, "01 still running");
        assert_eq!(t.marker(), "00");
        assert_eq!(t.finish("01"), Some("02".into()));
        assert_eq!(t.in_flight(), 1);
        assert_eq!(t.finish("03"), Some("03".into()));
        assert!(t.is_idle());
    }

    #[test]
    fn finishing_an_unknown_position_changes_nothing() {
        let mut t = MarkerTracker::new("05");
        t.start("06");
        assert_eq!(t.finish("09"), None);
        assert_eq!(t.marker(), "05");
    }

    #[test]
    fn one_entry_per_key_runs_at_a_time_in_order() {
        let mut q = KeyQueue::new();
        assert_eq!(q.offer("a", 1), Some(1));
        assert_eq!(q.offer("a", 2), None);
        assert_eq!(q.offer("b", 3), Some(3));
        assert_eq!(q.offer("a", 4), None);
        assert_eq!(q.done("a"), Some(2));
        assert_eq!(q.done("a"), Some(4));
        assert_eq!(q.done("a"), None);
        assert_eq!(q.busy_keys(), 1);
        assert_eq!(q.done("b"), None);
        assert_eq!(q.busy_keys(), 0);
        assert_eq!(q.offer("a", 5), Some(5), "key free again");
    }
}
