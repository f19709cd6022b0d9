//! The op pipeline of one PG copy: version assignment, the in-memory window
//! of the persisted log (for trimming), resent-op detection with the
//! replies of recent request ids, and completion of ops in flight.
//!
//! Several ops are in flight at once on a primary (the daemon serializes ops
//! on one object and hands ops to the store in version order); each is
//! acknowledged once it is durable on every acting replica. Replicas apply
//! entries strictly in version order (each names its predecessor). Pure.

use crate::pglog::{Ev, PgSummary, ev};
use meridian_proto::osd::{LogEntry, SubOpResult};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

/// A client's request id: (client, tid).
pub type ReqKey = (u64, u64);

/// Replies kept per PG for resent ops: at most this many bytes of results
/// (older replies are recomputed from the object instead).
const MAX_CACHED_RESULT_BYTES: usize = 1 << 20;
/// One reply bigger than this is never cached.
const MAX_RESULT_BYTES: usize = 64 << 10;

/// What a resent request id finds.
#[derive(Debug, Clone, PartialEq)]
pub enum Resent {
    /// The original is still in flight: the client should retry shortly.
    InFlight,
    /// The original was applied: answer with its version, user version and
    /// (if still cached) its results.
    Done {
        /// PG version of the original.
        version: Ev,
        /// Object user version after it.
        user_version: u64,
        /// Its reply's results, if kept.
        results: Option<Arc<Vec<SubOpResult>>>,
    },
}

/// A version handed to a new op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    /// The op's version.
    pub version: Ev,
    /// The version before it (replicas check they hold exactly this).
    pub prior: Ev,
    /// The summary to persist with the op.
    pub summary: PgSummary,
    /// Trim the log up to this version in the same transaction.
    pub trim: Option<Ev>,
}

#[derive(Debug, Clone)]
struct InFlight {
    waiting: BTreeSet<u32>,
    reqid: Option<ReqKey>,
    user_version: u64,
}

#[derive(Debug, Clone)]
struct DoneOp {
    version: Ev,
    user_version: u64,
    results: Option<Arc<Vec<SubOpResult>>>,
}

/// The pipeline state of one PG copy for one activation.
#[derive(Debug, Clone, Default)]
pub struct OpPipeline {
    activation: u64,
    first: u64,
    summary: PgSummary,
    window: VecDeque<Ev>,
    max_log: usize,
    reqids: HashMap<ReqKey, DoneOp>,
    cached_bytes: usize,
    inflight: BTreeMap<Ev, InFlight>,
}

impl OpPipeline {
    /// A pipeline for an activation in the interval starting at `first`,
    /// over a copy holding `log` and `summary`.
    pub fn new(
        activation: u64,
        first: u64,
        summary: PgSummary,
        log: &[LogEntry],
        max_log: usize,
    ) -> Self {
        let reqids = log
            .iter()
            .filter_map(|e| {
                e.reqid.as_ref().map(|r| {
                    (
                        (r.client, r.tid),
                        DoneOp {
                            version: ev(&e.version),
                            user_version: e.user_version,
                            results: None,
                        },
                    )
                })
            })
            .collect();
        Self {
            activation,
            first,
            window: log.iter().map(|e| ev(&e.version)).collect(),
            summary,
            max_log: max_log.max(1),
            reqids,
            cached_bytes: 0,
            inflight: BTreeMap::new(),
        }
    }

    /// The activation the pipeline belongs to.
    pub fn activation(&self) -> u64 {
        self.activation
    }

    /// The newest assigned (or applied) version.
    pub fn last_update(&self) -> Ev {
        self.summary.last_update
    }

    /// The summary as of the newest op.
    pub fn summary(&self) -> &PgSummary {
        &self.summary
    }

    /// Records a newer PG history (persisted with the next info write).
    pub fn set_history(&mut self, h: crate::pglog::PgHistory) {
        self.summary.history = h;
    }

    /// Ops assigned but not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// Looks up a resent request id.
    pub fn resent(&self, reqid: ReqKey) -> Option<Resent> {
        if self.inflight.values().any(|i| i.reqid == Some(reqid)) {
            return Some(Resent::InFlight);
        }
        self.reqids.get(&reqid).map(|d| Resent::Done {
            version: d.version,
            user_version: d.user_version,
            results: d.results.clone(),
        })
    }

    fn note(&mut self, v: Ev) -> (PgSummary, Option<Ev>) {
        self.summary.last_update = v;
        self.window.push_back(v);
        let mut trim = None;
        while self.window.len() > self.max_log {
            trim = self.window.pop_front();
        }
        if let Some(t) = trim {
            self.summary.log_tail = t;
            self.reqids.retain(|_, d| d.version > t);
            self.cached_bytes = self
                .reqids
                .values()
                .map(|d| d.results.as_ref().map_or(0, |r| results_size(r)))
                .sum();
        }
        (self.summary.clone(), trim)
    }

    /// Primary: assigns the next version to an op that must be acknowledged
    /// by every OSD of `waiting` (the acting set, this OSD included).
    pub fn assign(
        &mut self,
        reqid: Option<ReqKey>,
        user_version: u64,
        waiting: impl IntoIterator<Item = u32>,
    ) -> Assigned {
        let prior = self.summary.last_update;
        let version = (self.first.max(prior.0), prior.1 + 1);
        let (summary, trim) = self.note(version);
        self.inflight.insert(
            version,
            InFlight {
                waiting: waiting.into_iter().collect(),
                reqid,
                user_version,
            },
        );
        Assigned {
            version,
            prior,
            summary,
            trim,
        }
    }

    /// Primary: `osd` has `version` durably. True once every OSD has it:
    /// the op may be acknowledged (its reply is kept for resends).
    pub fn committed(&mut self, version: Ev, osd: u32, results: Option<&Vec<SubOpResult>>) -> bool {
        let Some(f) = self.inflight.get_mut(&version) else {
            return false;
        };
        f.waiting.remove(&osd);
        if !f.waiting.is_empty() {
            return false;
        }
        let Some(f) = self.inflight.remove(&version) else {
            return false;
        };
        if let Some(r) = f.reqid {
            let results = results
                .filter(|r| {
                    let n = results_size(r);
                    n > 0
                        && n <= MAX_RESULT_BYTES
                        && self.cached_bytes + n <= MAX_CACHED_RESULT_BYTES
                })
                .map(|r| Arc::new(r.clone()));
            self.cached_bytes += results.as_ref().map_or(0, |r| results_size(r));
            self.reqids.insert(
                r,
                DoneOp {
                    version,
                    user_version: f.user_version,
                    results,
                },
            );
        }
        true
    }

    /// Replica: applies the primary's entry `version`, which follows `prior`.
    /// Returns the summary and trim point to persist with it.
    pub fn replicate(
        &mut self,
        prior: Ev,
        version: Ev,
        reqid: Option<ReqKey>,
        user_version: u64,
    ) -> Result<(PgSummary, Option<Ev>), String> {
        if self.summary.last_update != prior {
            return Err(format!(
                "log gap: this copy is at {:?}, the entry follows {:?}",
                self.summary.last_update, prior
            ));
        }
        if version <= prior {
            return Err(format!("entry {version:?} does not follow {prior:?}"));
        }
        let out = self.note(version);
        if let Some(r) = reqid {
            self.reqids.insert(
                r,
                DoneOp {
                    version,
                    user_version,
                    results: None,
                },
            );
        }
        Ok(out)
    }
}

fn results_size(r: &[SubOpResult]) -> usize {
    r.iter()
        .map(|x| {
            x.data.len()
                + x.entries
                    .iter()
                    .map(|e| e.key.len() + e.value.len())
                    .sum::<usize>()
                + x.xattrs
                    .iter()
                    .map(|a| a.name.len() + a.value.len())
                    .sum::<usize>()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn read_result(n: usize) -> Vec<SubOpResult> {
        vec![SubOpResult {
            data: Bytes::from(vec![7u8; n]),
            ..Default::default()
        }]
    }

    #[test]
    fn versions_follow_each_other_and_continue_across_intervals() {
        let mut p = OpPipeline::new(1, 10, PgSummary::default(), &[], 100);
        let a = p.assign(None, 1, [0, 1]);
        let b = p.assign(None, 1, [0, 1]);
        assert_eq!((a.prior, a.version), ((0, 0), (10, 1)));
        assert_eq!((b.prior, b.version), ((10, 1), (10, 2)));
        let mut q = OpPipeline::new(2, 20, b.summary.clone(), &[], 100);
        assert_eq!(q.assign(None, 1, [0]).version, (20, 3));
    }

    #[test]
    fn an_op_completes_only_when_every_replica_has_it() {
        let mut p = OpPipeline::new(1, 5, PgSummary::default(), &[], 100);
        let a = p.assign(Some((9, 1)), 4, [0, 1, 2]);
        let r = read_result(10);
        assert!(!p.committed(a.version, 0, Some(&r)));
        assert!(!p.committed(a.version, 2, Some(&r)));
        assert_eq!(p.resent((9, 1)), Some(Resent::InFlight));
        assert!(p.committed(a.version, 1, Some(&r)));
        match p.resent((9, 1)) {
            Some(Resent::Done {
                version,
                user_version,
                results: Some(res),
            }) => {
                assert_eq!((version, user_version), (a.version, 4));
                assert_eq!(res.as_ref(), &r);
            }
            other => panic!("resend must find the original reply, got {other:?}"),
        }
    }

    #[test]
    fn the_log_window_trims_and_forgets_old_request_ids() {
        let mut p = OpPipeline::new(1, 1, PgSummary::default(), &[], 3);
        let mut last = None;
        for tid in 0..5 {
            let a = p.assign(Some((1, tid)), 1, [0]);
            assert!(p.committed(a.version, 0, None));
            last = Some(a);
        }
        let last = last.unwrap();
        assert_eq!(last.trim, Some((1, 2)));
        assert_eq!(p.summary().log_tail, (1, 2));
        assert_eq!(p.resent((1, 0)), None, "trimmed out of the log");
        assert!(matches!(p.resent((1, 4)), Some(Resent::Done { .. })));
    }

    #[test]
    fn a_replica_refuses_an_entry_that_does_not_follow_its_log() {
        let mut r = OpPipeline::new(1, 1, PgSummary::default(), &[], 10);
        assert!(r.replicate((0, 0), (1, 1), None, 1).is_ok());
        assert!(r.replicate((1, 2), (1, 3), None, 1).is_err(), "gap");
        assert!(r.replicate((1, 1), (1, 1), None, 1).is_err(), "not newer");
        assert!(r.replicate((1, 1), (1, 2), None, 1).is_ok());
        assert_eq!(r.last_update(), (1, 2));
    }

    #[test]
    fn big_replies_are_not_cached() {
        let mut p = OpPipeline::new(1, 1, PgSummary::default(), &[], 100);
        let a = p.assign(Some((1, 1)), 1, [0]);
        assert!(p.committed(a.version, 0, Some(&read_result(MAX_RESULT_BYTES + 1))));
        assert!(matches!(
            p.resent((1, 1)),
            Some(Resent::Done { results: None, .. })
        ));
    }
}
