//! Choosing the authoritative copy of a PG (Ceph's `find_best_info`) and
//! planning how every other copy catches up with it (log-based recovery of
//! the objects named after the copies' common point, which also undoes
//! divergent unacknowledged entries, or backfill when the log does not reach
//! back far enough). Pure.

use crate::pglog::{Ev, ev};
use meridian_proto::osd::PgInfo;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Why no copy can be authoritative.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Incomplete {
    /// Every copy heard from is empty or being backfilled.
    #[error("no complete copy answered (every copy heard from is missing or mid-backfill)")]
    NoCompleteCopy,
    /// Some copy knows the PG went active at an epoch no complete copy reached.
    #[error(
        "the PG went active at epoch {les}, but no complete copy that took part answered (newest complete copy: epoch {best})"
    )]
    HistoryAhead {
        /// The newest activation epoch known.
        les: u64,
        /// The newest activation epoch of a complete copy.
        best: u64,
    },
}

/// Picks the authoritative copy among `infos` (every copy that answered,
/// `exists=false` for none): the newest activation epoch among complete
/// copies must be at least the newest one any copy's history knows of
/// (unless `accept_loss`: an operator declared an OSD of the PG's past lost,
/// so the best copy left is taken), and among the copies of that activation
/// the newest `last_update` wins (ties: the longer log, then `prefer`, then
/// the lowest id).
pub fn choose_authoritative(
    infos: &BTreeMap<u32, PgInfo>,
    prefer: u32,
    accept_loss: bool,
) -> Result<u32, Incomplete> {
    let complete = |i: &PgInfo| i.exists && !i.backfilling;
    let history_les = infos.values().map(|i| i.history_les).max().unwrap_or(0);
    let best_les = infos
        .values()
        .filter(|i| complete(i))
        .map(|i| i.last_epoch_started)
        .max();
    let Some(best_les) = best_les else {
        if infos.values().all(|i| !i.exists) {
            // Nothing anywhere: a new PG (peering already made sure no
            // interval that may have written is unaccounted for).
            return Ok(prefer);
        }
        return Err(Incomplete::NoCompleteCopy);
    };
    if best_les < history_les && !accept_loss {
        return Err(Incomplete::HistoryAhead {
            les: history_les,
            best: best_les,
        });
    }
    infos
        .iter()
        .filter(|(_, i)| complete(i) && i.last_epoch_started >= best_les)
        .max_by_key(|(o, i)| {
            (
                ev(&i.last_update),
                std::cmp::Reverse(ev(&i.log_tail)),
                **o == prefer,
                std::cmp::Reverse(**o),
            )
        })
        .map(|(o, _)| *o)
        .ok_or(Incomplete::NoCompleteCopy)
}

/// How one copy is brought up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryPlan {
    /// Nothing to do.
    UpToDate,
    /// Copy these objects (log-based recovery).
    Objects(BTreeSet<String>),
    /// Copy everything and drop what the source lacks.
    Backfill,
}

/// Decides how `target` catches up with `auth` (pure; unit tested).
pub fn plan(target: Option<&PgInfo>, auth: &PgInfo) -> RecoveryPlan {
    let auth_lu = ev(&auth.last_update);
    let auth_tail = ev(&auth.log_tail);
    let auth_versions: HashSet<Ev> = auth.log.iter().map(|e| ev(&e.version)).collect();
    let Some(t) = target.filter(|t| t.exists) else {
        if auth_lu == (0, 0) {
            return RecoveryPlan::UpToDate;
        }
        if auth_tail == (0, 0) {
            return RecoveryPlan::Objects(auth.log.iter().map(|e| e.object.clone()).collect());
        }
        return RecoveryPlan::Backfill;
    };
    if t.backfilling {
        return RecoveryPlan::Backfill;
    }
    let t_lu = ev(&t.last_update);
    if t_lu == auth_lu {
        return RecoveryPlan::UpToDate;
    }
    // The newest version both logs share (or the target's head, if the auth log holds it).
    let common = if t_lu == (0, 0) || auth_versions.contains(&t_lu) {
        Some(t_lu)
    } else {
        t.log
            .iter()
            .rev()
            .map(|e| ev(&e.version))
            .find(|v| auth_versions.contains(v))
    };
    let common = match common {
        Some(c) if c >= auth_tail => c,
        Some(c) if c == (0, 0) && auth_tail == (0, 0) => c,
        _ => return RecoveryPlan::Backfill,
    };
    let mut objs: BTreeSet<String> = auth
        .log
        .iter()
        .filter(|e| ev(&e.version) > common)
        .map(|e| e.object.clone())
        .collect();
    // Divergent entries of the target (never acknowledged): undo by copying the auth state.
    objs.extend(
        t.log
            .iter()
            .filter(|e| ev(&e.version) > common && !auth_versions.contains(&ev(&e.version)))
            .map(|e| e.object.clone()),
    );
    RecoveryPlan::Objects(objs)
}

impl RecoveryPlan {
    /// Objects to move (every object for a backfill counts as unknown: 0).
    pub fn object_count(&self) -> usize {
        match self {
            RecoveryPlan::Objects(o) => o.len(),
            _ => 0,
        }
    }

    /// A short description for logs and `pg query`.
    pub fn describe(&self) -> String {
        match self {
            RecoveryPlan::UpToDate => "up-to-date".into(),
            RecoveryPlan::Objects(o) => format!("log recovery of {} objects", o.len()),
            RecoveryPlan::Backfill => "backfill".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pglog::ver;
    use meridian_proto::osd::LogEntry;
    use std::collections::BTreeMap;

    fn entry(e: u64, s: u64, obj: &str) -> LogEntry {
        LogEntry {
            version: ver((e, s)),
            object: obj.into(),
            ..Default::default()
        }
    }
    fn info(lu: Ev, tail: Ev, log: Vec<LogEntry>) -> PgInfo {
        PgInfo {
            exists: true,
            last_update: ver(lu),
            log_tail: ver(tail),
            log,
            ..Default::default()
        }
    }

    #[test]
    fn up_to_date_copy_needs_nothing() {
        let a = info((3, 2), (0, 0), vec![entry(3, 1, "a"), entry(3, 2, "b")]);
        assert_eq!(plan(Some(&a.clone()), &a), RecoveryPlan::UpToDate);
    }

    #[test]
    fn lagging_copy_recovers_only_newer_objects() {
        let auth = info(
            (4, 3),
            (0, 0),
            vec![entry(3, 1, "a"), entry(3, 2, "b"), entry(4, 3, "c")],
        );
        let t = info((3, 1), (0, 0), vec![entry(3, 1, "a")]);
        assert_eq!(
            plan(Some(&t), &auth),
            RecoveryPlan::Objects(["b".to_string(), "c".to_string()].into_iter().collect())
        );
    }

    #[test]
    fn divergent_entries_are_undone() {
        let auth = info(
            (5, 3),
            (0, 0),
            vec![entry(3, 1, "a"), entry(5, 2, "x"), entry(5, 3, "y")],
        );
        // The target logged (3,2) on "d" that no one else has: it must be replaced too.
        let t = info((3, 2), (0, 0), vec![entry(3, 1, "a"), entry(3, 2, "d")]);
        assert_eq!(
            plan(Some(&t), &auth),
            RecoveryPlan::Objects(["d", "x", "y"].iter().map(|s| s.to_string()).collect())
        );
    }

    #[test]
    fn copy_behind_the_log_tail_is_backfilled() {
        let auth = info((9, 900), (9, 100), vec![entry(9, 101, "a")]);
        let t = info((3, 5), (0, 0), vec![entry(3, 5, "z")]);
        assert_eq!(plan(Some(&t), &auth), RecoveryPlan::Backfill);
        assert_eq!(plan(None, &auth), RecoveryPlan::Backfill);
    }

    #[test]
    fn missing_copy_with_complete_log_recovers_from_log() {
        let auth = info((2, 2), (0, 0), vec![entry(2, 1, "a"), entry(2, 2, "b")]);
        assert_eq!(
            plan(None, &auth),
            RecoveryPlan::Objects(["a", "b"].iter().map(|s| s.to_string()).collect())
        );
        let empty = info((0, 0), (0, 0), vec![]);
        assert_eq!(plan(None, &empty), RecoveryPlan::UpToDate);
    }

    fn les(lu: Ev, les: u64, hles: u64) -> PgInfo {
        PgInfo {
            exists: true,
            last_update: ver(lu),
            last_epoch_started: les,
            history_les: hles,
            ..Default::default()
        }
    }

    #[test]
    fn newest_activation_wins_over_a_longer_stale_log() {
        // osd.2 missed the writes of interval 20 but has more entries from 10.
        let mut infos = BTreeMap::new();
        infos.insert(0, les((20, 7), 20, 10));
        infos.insert(2, les((10, 9), 10, 10));
        assert_eq!(choose_authoritative(&infos, 2, false), Ok(0));
    }

    #[test]
    fn a_backfilling_copy_is_never_authoritative() {
        let mut infos = BTreeMap::new();
        let mut b = les((30, 9), 30, 30);
        b.backfilling = true;
        infos.insert(1, b);
        infos.insert(0, les((20, 3), 20, 20));
        // The only copy of the newest activation is mid-backfill: incomplete.
        assert_eq!(
            choose_authoritative(&infos, 0, false),
            Err(Incomplete::HistoryAhead { les: 30, best: 20 })
        );
        // An operator who declared the rest lost takes the best copy left.
        assert_eq!(choose_authoritative(&infos, 0, true), Ok(0));
        infos.insert(2, les((30, 9), 30, 30));
        assert_eq!(choose_authoritative(&infos, 0, false), Ok(2));
    }

    #[test]
    fn empty_everywhere_is_a_new_pg() {
        let mut infos = BTreeMap::new();
        infos.insert(0, PgInfo::default());
        infos.insert(1, PgInfo::default());
        assert_eq!(choose_authoritative(&infos, 1, false), Ok(1));
    }
}
