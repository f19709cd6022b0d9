//! Past intervals and the prior set (Ceph's `PastIntervals` and `PriorSet`).
//!
//! An *interval* is a run of map epochs during which a PG's acting set (and
//! pool size / min_size) stayed the same. Only an interval whose primary got
//! its `up_thru` raised to the interval's first epoch can have activated and
//! so accepted writes (`maybe_went_rw`): a primary asks the monitors for that
//! before it activates. From the placement history alone, then, peering knows
//! every earlier acting set that may hold acknowledged writes, and a PG stays
//! down until it has heard from at least one member of each of them (or an
//! operator declared the missing ones lost). Everything here is pure.

use meridian_client::{MapView, PgId};
use std::collections::BTreeSet;

/// The placement of one PG in one map.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Placement {
    /// Acting set (CRUSH's choice minus down OSDs); the first is the primary.
    pub acting: Vec<u32>,
    /// Pool size.
    pub size: u32,
    /// Pool min_size: fewer acting members than this never accept writes.
    pub min_size: u32,
}

impl Placement {
    /// The primary, if any OSD is acting.
    pub fn primary(&self) -> Option<u32> {
        self.acting.first().copied()
    }
}

/// Where `pg` is placed in `view`; `None` if its pool does not exist there.
pub fn placement_at(view: &MapView, pg: PgId) -> Option<Placement> {
    let pool = view.pool(pg.pool)?;
    if pg.seed >= pool.pg_num {
        return None;
    }
    Some(Placement {
        acting: view.pg_acting(pool, pg.seed),
        size: pool.size,
        min_size: pool.min_size,
    })
}

/// True if `pg`'s placement in any of `maps` differs from `current`: a new
/// interval started (even if a later map went back to the same placement).
pub fn placement_changed<'a>(
    pg: PgId,
    current: &Placement,
    maps: impl IntoIterator<Item = &'a MapView>,
) -> bool {
    maps.into_iter()
        .any(|m| placement_at(m, pg).unwrap_or_default() != *current)
}

/// One finished interval of a PG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastInterval {
    /// First epoch of the interval.
    pub first: u64,
    /// Last epoch of the interval.
    pub last: u64,
    /// Its acting set (primary first).
    pub acting: Vec<u32>,
    /// True if the interval may have accepted writes.
    pub maybe_went_rw: bool,
}

impl PastInterval {
    /// The interval's primary.
    pub fn primary(&self) -> Option<u32> {
        self.acting.first().copied()
    }
}

/// The intervals of a PG over a stretch of map history.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IntervalHistory {
    /// Finished intervals, oldest first.
    pub past: Vec<PastInterval>,
    /// First epoch of the current (unfinished) interval.
    pub current_first: u64,
    /// Placement in the current interval.
    pub current: Placement,
}

/// Computes the intervals of `pg` from `maps`: the maps at which placement
/// changed, oldest first, the first being the map in force at the start of
/// the stretch (each map holds until the next one's epoch). The interval
/// already running at the first map may have begun earlier, so its
/// `maybe_went_rw` is decided conservatively (true whenever it had min_size).
pub fn compute_intervals<'a>(
    pg: PgId,
    maps: impl IntoIterator<Item = &'a MapView>,
) -> IntervalHistory {
    let mut out = IntervalHistory::default();
    let mut cur: Option<(u64, Placement, bool)> = None; // (first, placement, partial)
    let mut prev: Option<&MapView> = None;
    for view in maps {
        let e = view.epoch();
        let p = placement_at(view, pg).unwrap_or_default();
        match &cur {
            None => cur = Some((e, p, true)),
            Some((first, cp, partial)) if *cp != p => {
                let last = e.saturating_sub(1).max(*first);
                let rw = went_rw(cp, *first, prev, *partial);
                out.past.push(PastInterval {
                    first: *first,
                    last,
                    acting: cp.acting.clone(),
                    maybe_went_rw: rw,
                });
                cur = Some((e, p, false));
            }
            Some(_) => {}
        }
        prev = Some(view);
    }
    if let Some((first, p, _)) = cur {
        out.current_first = first;
        out.current = p;
    }
    out
}

/// Ceph's `check_new_interval` rule for `maybe_went_rw`: enough members to
/// accept writes, and the primary's up_thru (as of the interval's last map)
/// reached the interval's first epoch.
fn went_rw(p: &Placement, first: u64, lastmap: Option<&MapView>, partial: bool) -> bool {
    let Some(primary) = p.primary() else {
        return false;
    };
    if (p.acting.len() as u32) < p.min_size.max(1) {
        return false;
    }
    if partial {
        return true;
    }
    lastmap
        .and_then(|m| m.osd(primary))
        .is_some_and(|o| o.up_thru >= first)
}

/// Whom peering must hear from before the PG may go active.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PriorSet {
    /// OSDs to query: up members of intervals that may have accepted writes,
    /// and the current acting set.
    pub probe: BTreeSet<u32>,
    /// Down (and not lost) members of such intervals.
    pub down: BTreeSet<u32>,
    /// Down OSDs the PG waits for: every member of some such interval is
    /// down, so acknowledged writes may exist only on them.
    pub blocked_by: BTreeSet<u32>,
    /// True when the PG must stay down (some such interval has no member up).
    pub pg_down: bool,
    /// The first such interval found with no member up, as (first, last).
    pub blocking_interval: Option<(u64, u64)>,
}

/// Builds the prior set from the past intervals that end at or after
/// `since` (the newest epoch at which the PG is known to have become active
/// on its whole acting set: nothing older can hold writes the members of
/// that activation lack), as `now` sees the OSDs (up, lost).
pub fn prior_set(past: &[PastInterval], since: u64, now: &MapView, acting: &[u32]) -> PriorSet {
    let mut ps = PriorSet::default();
    ps.probe.extend(acting.iter().copied());
    for i in past.iter().rev() {
        if i.last < since {
            break;
        }
        if !i.maybe_went_rw {
            continue;
        }
        let mut any_up = false;
        let mut down_here = Vec::new();
        for &o in &i.acting {
            match now.osd(o) {
                // A store born after the interval began never held its
                // writes (a replaced disk under the same id): it cannot
                // answer for it, like a lost OSD.
                Some(info) if info.store_born > i.first => {}
                Some(info) if info.up => {
                    ps.probe.insert(o);
                    any_up = true;
                }
                Some(info) if info.lost_at > i.first => {}
                _ => {
                    ps.down.insert(o);
                    down_here.push(o);
                }
            }
        }
        if !any_up && !down_here.is_empty() {
            ps.pg_down = true;
            ps.blocked_by.extend(down_here);
            if ps.blocking_interval.is_none() {
                ps.blocking_interval = Some((i.first, i.last));
            }
        }
    }
    ps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::testmaps::TestMon;

    const PG: PgId = PgId { pool: 1, seed: 0 };

    #[test]
    fn interval_without_up_thru_never_went_rw() {
        let mut mon = TestMon::new(3, 1, 3, 2);
        let start = mon.epoch();
        let acting = placement_at(&mon.view(), PG).unwrap().acting;
        let primary = acting[0];
        mon.alive(primary, start);
        // A replica fails: interval 2 never gets up_thru, so it cannot have written.
        let gone = acting[2];
        let e2 = mon.down(gone);
        mon.boot(gone);
        let h = compute_intervals(PG, mon.history_from(start).iter());
        assert_eq!(h.past.len(), 2, "{h:?}");
        assert!(h.past[0].maybe_went_rw, "first interval had up_thru");
        assert_eq!(h.past[1].first, e2);
        assert!(!h.past[1].maybe_went_rw, "no up_thru for {e2}");
        assert_eq!(h.current.acting, acting);
    }

    #[test]
    fn writes_in_an_interval_whose_members_are_all_down_block_peering() {
        // The sequence: C down; A,B write; A,B down; C returns alone.
        let mut mon = TestMon::new(3, 1, 3, 2);
        let start = mon.epoch();
        let acting = placement_at(&mon.view(), PG).unwrap().acting;
        let (a, b, c) = (acting[0], acting[1], acting[2]);
        mon.alive(a, start);
        let e_ab = mon.down(c);
        mon.alive(a, e_ab); // A activates [A,B] and accepts writes
        mon.down(a);
        mon.down(b);
        let e_c = mon.boot(c);
        let now = mon.view();
        let h = compute_intervals(PG, mon.history_from(start).iter());
        assert_eq!(h.current.acting, vec![c]);
        assert_eq!(h.current_first, e_c);
        let ps = prior_set(&h.past, start, &now, &h.current.acting);
        assert!(ps.pg_down, "{ps:?}");
        assert_eq!(ps.blocked_by, [a, b].into_iter().collect());
        // Declaring one of them lost unblocks (the operator accepts the loss).
        mon.lost(a);
        mon.lost(b);
        let ps = prior_set(&h.past, start, &mon.view(), &h.current.acting);
        assert!(!ps.pg_down, "{ps:?}");
    }

    #[test]
    fn intervals_before_the_last_activation_are_ignored() {
        let mut mon = TestMon::new(3, 1, 3, 2);
        let start = mon.epoch();
        let acting = placement_at(&mon.view(), PG).unwrap().acting;
        mon.alive(acting[0], start);
        mon.down(acting[1]);
        let e = mon.boot(acting[1]);
        mon.alive(acting[0], e);
        mon.down(acting[2]);
        let h = compute_intervals(PG, mon.history_from(start).iter());
        // Everything before `e` is covered by the activation at `e`.
        let ps = prior_set(&h.past, e, &mon.view(), &h.current.acting);
        assert!(!ps.pg_down);
        assert!(!ps.probe.contains(&acting[2]));
        // Counting from the start, the first interval's members are needed too.
        let all = prior_set(&h.past, start, &mon.view(), &h.current.acting);
        assert!(all.down.contains(&acting[2]));
        assert!(!all.pg_down, "other members of each interval are up");
    }
}
