//! Extent allocator over the block file, in 4 KiB units.
//!
//! The free map lives only in memory: at open it is rebuilt from the object
//! records (everything not referenced by a committed record is free), so there
//! is no persisted free list that could disagree with the records.

use std::collections::BTreeMap;

/// Free-extent map: start unit -> length in units, coalesced.
#[derive(Debug, Clone)]
pub(crate) struct Allocator {
    free: BTreeMap<u64, u64>,
    free_units: u64,
    total_units: u64,
    /// Next-fit cursor: allocation resumes here to keep sequential writes contiguous.
    cursor: u64,
}

/// Returned by [`Allocator::mark_used`] when a range is not entirely free.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Overlap {
    pub start: u64,
    pub len: u64,
}

impl Allocator {
    /// All of `[first, total)` free.
    pub fn new(first: u64, total_units: u64) -> Self {
        let mut free = BTreeMap::new();
        if total_units > first {
            free.insert(first, total_units - first);
        }
        Allocator {
            free,
            free_units: total_units.saturating_sub(first),
            total_units,
            cursor: first,
        }
    }

    /// Units currently free.
    pub fn free_units(&self) -> u64 {
        self.free_units
    }

    /// Number of free extents (fragmentation indicator).
    pub fn free_extents(&self) -> usize {
        self.free.len()
    }

    /// Allocates `n` contiguous units (next-fit), or `None`.
    pub fn alloc(&mut self, n: u64) -> Option<u64> {
        if n == 0 || n > self.free_units {
            return None;
        }
        let found = self
            .free
            .range(self.cursor..)
            .chain(self.free.range(..self.cursor))
            .find(|(_, len)| **len >= n)
            .map(|(s, l)| (*s, *l));
        let (start, len) = found?;
        self.free.remove(&start);
        if len > n {
            self.free.insert(start + n, len - n);
        }
        self.free_units -= n;
        self.cursor = start + n;
        Some(start)
    }

    /// Returns `[start, start+n)` to the free map, merging neighbours.
    /// Returns `Err` (and changes nothing) if any unit of it is already free.
    pub fn release(&mut self, start: u64, n: u64) -> Result<(), Overlap> {
        if n == 0 {
            return Ok(());
        }
        let end = start + n;
        if end > self.total_units {
            return Err(Overlap { start, len: n });
        }
        let prev = self.free.range(..end).next_back().map(|(s, l)| (*s, *l));
        if let Some((ps, pl)) = prev
            && ps + pl > start
        {
            return Err(Overlap { start, len: n });
        }
        let mut new_start = start;
        let mut new_len = n;
        if let Some((ps, pl)) = prev
            && ps + pl == start
        {
            self.free.remove(&ps);
            new_start = ps;
            new_len += pl;
        }
        if let Some(nl) = self.free.remove(&end) {
            new_len += nl;
        }
        self.free.insert(new_start, new_len);
        self.free_units += n;
        Ok(())
    }

    /// Marks `[start, start+n)` used (rebuild at open). Fails if any unit of it
    /// is not free: two records claim the same block, or it is out of bounds.
    pub fn mark_used(&mut self, start: u64, n: u64) -> Result<(), Overlap> {
        if n == 0 {
            return Ok(());
        }
        let end = start + n;
        let containing = self.free.range(..=start).next_back().map(|(s, l)| (*s, *l));
        match containing {
            Some((fs, fl)) if fs + fl >= end => {
                self.free.remove(&fs);
                if start > fs {
                    self.free.insert(fs, start - fs);
                }
                if fs + fl > end {
                    self.free.insert(end, fs + fl - end);
                }
                self.free_units -= n;
                Ok(())
            }
            _ => Err(Overlap { start, len: n }),
        }
    }

    /// True if every unit of `[start, start+n)` is free.
    #[cfg(test)]
    pub fn is_free(&self, start: u64, n: u64) -> bool {
        self.free
            .range(..=start)
            .next_back()
            .is_some_and(|(s, l)| s + l >= start + n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn alloc_release_coalesce() {
        let mut a = Allocator::new(1, 100);
        assert_eq!(a.free_units(), 99);
        let x = a.alloc(10).unwrap();
        let y = a.alloc(10).unwrap();
        assert_eq!((x, y), (1, 11));
        assert_eq!(a.release(x, 10), Ok(()));
        assert_eq!(a.release(x, 10), Err(Overlap { start: 1, len: 10 }));
        assert_eq!(a.release(y, 10), Ok(()));
        assert_eq!(a.free_extents(), 1);
        assert_eq!(a.free_units(), 99);
        assert!(a.alloc(100).is_none());
        assert_eq!(a.alloc(99), Some(1));
        assert!(a.alloc(1).is_none());
    }

    #[test]
    fn mark_used_detects_double_claims() {
        let mut a = Allocator::new(1, 64);
        assert_eq!(a.mark_used(10, 5), Ok(()));
        assert!(a.mark_used(12, 1).is_err());
        assert!(a.mark_used(0, 1).is_err());
        assert!(a.mark_used(60, 8).is_err());
        assert_eq!(a.mark_used(15, 1), Ok(()));
        assert_eq!(a.free_units(), 63 - 6);
        assert!(a.is_free(1, 9) && !a.is_free(9, 2) && a.is_free(16, 48));
    }

    #[test]
    fn random_alloc_free_keeps_accounting() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut a = Allocator::new(1, 4096);
        let mut live: Vec<(u64, u64)> = Vec::new();
        for _ in 0..20_000 {
            if rng.gen_bool(0.55) {
                let n = rng.gen_range(1..40);
                if let Some(s) = a.alloc(n) {
                    for &(ls, ln) in &live {
                        assert!(s + n <= ls || ls + ln <= s, "overlap");
                    }
                    live.push((s, n));
                }
            } else if !live.is_empty() {
                let i = rng.gen_range(0..live.len());
                let (s, n) = live.swap_remove(i);
                a.release(s, n).unwrap();
            }
            let used: u64 = live.iter().map(|l| l.1).sum();
            assert_eq!(a.free_units() + used, 4095);
        }
    }
}
