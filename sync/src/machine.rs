//! The sync state machine of one log shard, as a pure function of
//! (state, event) → (state, effects). The same machine drives a metadata
//! log shard, a data log shard and a bucket index shard: each goes
//! init → full → incremental; in full sync it walks a listing of everything
//! the source holds, in incremental sync it follows the source's log from the
//! position it read when it started (so nothing that changed during the full
//! sync is missed). Entries are applied several at a time, one at a time per
//! object key, and the persisted marker only moves over a prefix that is
//! done ([`MarkerTracker`]). An entry that fails is retried with backoff; one
//! that keeps failing goes to the sync error log, which is retried on its
//! own, so one bad object never stops a shard.

use crate::tracker::{KeyQueue, MarkerTracker};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;

/// Where a shard is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Not started: the source's log head is read first.
    #[default]
    Init,
    /// Copying everything the source holds.
    Full,
    /// Following the source's log.
    Incremental,
}

/// The persisted state of one shard (kept in the zone's log pool).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ShardStatus {
    /// Phase.
    pub phase: Phase,
    /// Full sync: the last listing position applied.
    pub full_marker: String,
    /// Where incremental sync starts (the source's head when full sync began)
    /// or, once incremental, the last log position applied.
    pub marker: String,
    /// Entries sent to the error log so far (for status).
    pub errors: u64,
    /// A bucket shard seen while its bucket's sync was disabled: whatever
    /// the source logged meanwhile was passed over, so when sync is enabled
    /// again the shard starts over with a full sync.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

/// One item to apply: its position in the listing or log, and the key that
/// serializes it (object key, bucket shard, metadata name).
pub trait Item: Clone + std::fmt::Debug {
    /// Position (strictly increasing within one listing or log).
    fn pos(&self) -> &str;
    /// Items with equal keys are applied one at a time, in order.
    fn key(&self) -> &str;
}

/// What happened.
#[derive(Debug, Clone)]
pub enum Event<I> {
    /// The worker (re)started with the persisted status.
    Start,
    /// Init: the source's log head.
    Head(String),
    /// A page of the full listing (`more`: another page follows).
    FullPage {
        /// Items, in position order.
        items: Vec<I>,
        /// More pages follow.
        more: bool,
    },
    /// A page of the log after the marker.
    LogPage {
        /// Items, in position order.
        items: Vec<I>,
        /// More entries follow right away.
        more: bool,
    },
    /// A listing or log read failed (the source is unreachable, say).
    ListFailed(String),
    /// The retry timer of a failed read fired.
    RetryList,
    /// An item was applied (or skipped as already there).
    Applied(String),
    /// An item failed.
    Failed {
        /// Its position.
        pos: String,
        /// Why.
        error: String,
    },
    /// A failed item's backoff elapsed: apply it again.
    Retry(String),
}

/// What the worker must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect<I> {
    /// Read the source's log head (init).
    ReadHead,
    /// List the source's contents after a full-listing position.
    ListFull(String),
    /// List the source's log after a marker; `wait`: long-poll until
    /// something arrives (the shard is caught up).
    ListLog {
        /// After this position.
        after: String,
        /// Long-poll.
        wait: bool,
    },
    /// Apply an item.
    Apply(I),
    /// Apply it again after a delay.
    ApplyAfter(I, Duration),
    /// Retry the last read after a delay.
    ListAfter(Duration),
    /// Persist the status.
    Persist(ShardStatus),
    /// Record a failing item in the error log (it is retried from there).
    RecordError {
        /// The item.
        item: I,
        /// The last error.
        error: String,
    },
}

/// Tuning of a shard machine.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Items applied at once.
    pub window: usize,
    /// Attempts before an item goes to the error log.
    pub attempts: u32,
    /// First retry delay (doubles per attempt).
    pub backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            window: 16,
            attempts: 4,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// A pending read: what to ask for next once the current items are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// A read is in flight.
    InFlight,
    /// The last page said more follows (read again when the queue drains).
    More,
    /// The listing is exhausted (full) or the log is caught up (incremental).
    End,
}

/// The machine of one shard.
#[derive(Debug)]
pub struct ShardMachine<I: Item> {
    status: ShardStatus,
    tuning: Tuning,
    tracker: MarkerTracker,
    /// Listed, not yet started.
    queued: VecDeque<I>,
    keys: KeyQueue<I>,
    /// Items started (or waiting on their key), by position.
    started: std::collections::HashMap<String, (I, u32)>,
    reading: Reading,
    list_failures: u32,
    last_error: Option<String>,
}

impl<I: Item> ShardMachine<I> {
    /// A machine resuming from `status`.
    pub fn new(status: ShardStatus, tuning: Tuning) -> Self {
        let tracker = MarkerTracker::new(match status.phase {
            Phase::Full => status.full_marker.clone(),
            _ => status.marker.clone(),
        });
        Self {
            status,
            tuning,
            tracker,
            queued: VecDeque::new(),
            keys: KeyQueue::new(),
            started: std::collections::HashMap::new(),
            reading: Reading::End,
            list_failures: 0,
            last_error: None,
        }
    }

    /// The state now.
    pub fn status(&self) -> &ShardStatus {
        &self.status
    }

    /// Items listed and not yet applied.
    pub fn pending(&self) -> usize {
        self.queued.len() + self.started.len()
    }

    /// The last error seen (listing or item), for `sync status --detail`.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// True when the shard has applied everything the source logged as far as
    /// it has read, and its last read found nothing more.
    pub fn is_idle(&self) -> bool {
        self.status.phase == Phase::Incremental
            && self.pending() == 0
            && matches!(self.reading, Reading::InFlight | Reading::End)
    }

    /// Feeds one event; returns what to do.
    pub fn step(&mut self, ev: Event<I>) -> Vec<Effect<I>> {
        let mut fx = Vec::new();
        match ev {
            Event::Start => {
                self.reading = Reading::InFlight;
                fx.push(match self.status.phase {
                    Phase::Init => Effect::ReadHead,
                    Phase::Full => Effect::ListFull(self.status.full_marker.clone()),
                    Phase::Incremental => Effect::ListLog {
                        after: self.status.marker.clone(),
                        wait: false,
                    },
                });
            }
            Event::Head(head) => {
                self.list_failures = 0;
                self.status.phase = Phase::Full;
                self.status.marker = head;
                self.status.full_marker.clear();
                self.tracker = MarkerTracker::new("");
                fx.push(Effect::Persist(self.status.clone()));
                fx.push(Effect::ListFull(String::new()));
            }
            Event::FullPage { items, more } | Event::LogPage { items, more } => {
                self.list_failures = 0;
                let any = !items.is_empty();
                for it in items {
                    self.tracker.start(it.pos());
                    self.queued.push_back(it);
                }
                self.reading = if more || (any && self.status.phase == Phase::Incremental) {
                    // An incremental page with entries: read again after them
                    // (without waiting) in case more arrived meanwhile.
                    Reading::More
                } else {
                    Reading::End
                };
                self.pump(&mut fx);
            }
            Event::ListFailed(e) => {
                self.list_failures += 1;
                self.last_error = Some(e);
                self.reading = Reading::InFlight;
                fx.push(Effect::ListAfter(self.delay(self.list_failures)));
            }
            Event::RetryList => {
                self.reading = Reading::InFlight;
                fx.push(self.read_effect(false));
            }
            Event::Applied(pos) => {
                self.finish(&pos, &mut fx);
                self.pump(&mut fx);
            }
            Event::Failed { pos, error } => {
                self.last_error = Some(error.clone());
                let tried = self.started.get_mut(&pos).map(|(item, attempts)| {
                    *attempts += 1;
                    (item.clone(), *attempts)
                });
                if let Some((item, attempts)) = tried {
                    if attempts < self.tuning.attempts {
                        let d = self.delay(attempts);
                        fx.push(Effect::ApplyAfter(item, d));
                    } else {
                        self.status.errors += 1;
                        fx.push(Effect::RecordError { item, error });
                        self.finish(&pos, &mut fx);
                        self.pump(&mut fx);
                    }
                }
            }
            Event::Retry(pos) => {
                if let Some((item, _)) = self.started.get(&pos) {
                    fx.push(Effect::Apply(item.clone()));
                }
            }
        }
        fx
    }

    fn delay(&self, attempt: u32) -> Duration {
        let d = self.tuning.backoff * 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        d.min(self.tuning.max_backoff)
    }

    fn read_effect(&self, wait: bool) -> Effect<I> {
        match self.status.phase {
            Phase::Init => Effect::ReadHead,
            Phase::Full => Effect::ListFull(self.last_listed()),
            Phase::Incremental => Effect::ListLog {
                after: self.last_listed(),
                wait,
            },
        }
    }

    /// The position of the last item listed (the next read starts after it).
    fn last_listed(&self) -> String {
        self.queued
            .back()
            .map(|i| i.pos().to_string())
            .or_else(|| {
                self.started
                    .keys()
                    .max()
                    .cloned()
                    .filter(|p| p.as_str() > self.tracker.marker())
            })
            .unwrap_or_else(|| self.tracker.marker().to_string())
    }

    fn finish(&mut self, pos: &str, fx: &mut Vec<Effect<I>>) {
        let Some((item, _)) = self.started.remove(pos) else {
            return;
        };
        if let Some(next) = self.keys.done(item.key()) {
            fx.push(Effect::Apply(next));
        }
        if let Some(m) = self.tracker.finish(pos) {
            match self.status.phase {
                Phase::Full => self.status.full_marker = m,
                _ => self.status.marker = m,
            }
            fx.push(Effect::Persist(self.status.clone()));
        }
    }

    /// Starts queued items up to the window; reads on when drained.
    fn pump(&mut self, fx: &mut Vec<Effect<I>>) {
        while self.started.len() < self.tuning.window {
            let Some(it) = self.queued.pop_front() else {
                break;
            };
            self.started.insert(it.pos().to_string(), (it.clone(), 0));
            let key = it.key().to_string();
            if let Some(run) = self.keys.offer(&key, it) {
                fx.push(Effect::Apply(run));
            }
        }
        if !self.queued.is_empty() {
            return;
        }
        match self.reading {
            Reading::InFlight => {}
            Reading::More => {
                self.reading = Reading::InFlight;
                fx.push(self.read_effect(false));
            }
            Reading::End => {
                if !self.started.is_empty() {
                    return;
                }
                if self.status.phase == Phase::Full {
                    // The listing is done: follow the log from where it stood.
                    self.status.phase = Phase::Incremental;
                    self.status.full_marker.clear();
                    self.tracker = MarkerTracker::new(self.status.marker.clone());
                    fx.push(Effect::Persist(self.status.clone()));
                }
                self.reading = Reading::InFlight;
                fx.push(self.read_effect(true));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct E(String, String);
    impl Item for E {
        fn pos(&self) -> &str {
            &self.0
        }
        fn key(&self) -> &str {
            &self.1
        }
    }
    fn e(pos: &str, key: &str) -> E {
        E(pos.into(), key.into())
    }
    fn applies(fx: &[Effect<E>]) -> Vec<String> {
        fx.iter()
            .filter_map(|f| match f {
                Effect::Apply(i) => Some(i.0.clone()),
                _ => None,
            })
            .collect()
    }
    fn persisted(fx: &[Effect<E>]) -> Option<ShardStatus> {
        fx.iter().rev().find_map(|f| match f {
            Effect::Persist(s) => Some(s.clone()),
            _ => None,
        })
    }

    #[test]
    fn init_reads_the_head_then_full_then_follows_the_log_from_that_head() {
        let mut m = ShardMachine::new(ShardStatus::default(), Tuning::default());
        assert_eq!(m.step(Event::Start), vec![Effect::ReadHead]);
        let fx = m.step(Event::Head("0007".into()));
        assert_eq!(persisted(&fx).unwrap().phase, Phase::Full);
        assert!(fx.contains(&Effect::ListFull(String::new())));
        let fx = m.step(Event::FullPage {
            items: vec![e("a", "a"), e("b", "b")],
            more: false,
        });
        assert_eq!(applies(&fx), vec!["a", "b"]);
        m.step(Event::Applied("a".into()));
        let fx = m.step(Event::Applied("b".into()));
        let st = persisted(&fx).unwrap();
        assert_eq!(st.phase, Phase::Incremental);
        assert_eq!(
            st.marker, "0007",
            "incremental starts at the head read at init"
        );
        assert!(fx.contains(&Effect::ListLog {
            after: "0007".into(),
            wait: true
        }));
        assert!(m.is_idle());
    }

    #[test]
    fn a_restart_in_full_sync_resumes_after_the_persisted_position() {
        let st = ShardStatus {
            phase: Phase::Full,
            full_marker: "k".into(),
            marker: "0003".into(),
            errors: 0,
            disabled: false,
        };
        let mut m = ShardMachine::<E>::new(st, Tuning::default());
        assert_eq!(m.step(Event::Start), vec![Effect::ListFull("k".into())]);
    }

    #[test]
    fn marker_waits_for_earlier_items_and_keys_run_one_at_a_time() {
        let st = ShardStatus {
            phase: Phase::Incremental,
            marker: "00".into(),
            ..Default::default()
        };
        let mut m = ShardMachine::new(st, Tuning::default());
        m.step(Event::Start);
        let fx = m.step(Event::LogPage {
            items: vec![e("01", "x"), e("02", "y"), e("03", "x")],
            more: false,
        });
        assert_eq!(
            applies(&fx),
            vec!["01", "02"],
            "03 waits behind 01 (same key)"
        );
        let fx = m.step(Event::Applied("02".into()));
        assert!(persisted(&fx).is_none(), "01 is not done: the marker stays");
        let fx = m.step(Event::Applied("01".into()));
        assert_eq!(applies(&fx), vec!["03"]);
        assert_eq!(persisted(&fx).unwrap().marker, "02");
        let fx = m.step(Event::Applied("03".into()));
        assert_eq!(persisted(&fx).unwrap().marker, "03");
        let fx = m.step(Event::LogPage {
            items: vec![],
            more: false,
        });
        assert!(fx.contains(&Effect::ListLog {
            after: "03".into(),
            wait: true
        }));
    }

    #[test]
    fn a_failing_item_is_retried_then_recorded_and_passed() {
        let st = ShardStatus {
            phase: Phase::Incremental,
            ..Default::default()
        };
        let tuning = Tuning {
            attempts: 3,
            ..Default::default()
        };
        let mut m = ShardMachine::new(st, tuning);
        m.step(Event::Start);
        m.step(Event::LogPage {
            items: vec![e("1", "k")],
            more: false,
        });
        for attempt in 1..3 {
            let fx = m.step(Event::Failed {
                pos: "1".into(),
                error: "unreachable".into(),
            });
            assert!(
                matches!(&fx[..], [Effect::ApplyAfter(i, d)] if i.0 == "1" && *d == Duration::from_millis(200) * 2u32.pow(attempt - 1)),
                "{fx:?}"
            );
            assert_eq!(applies(&m.step(Event::Retry("1".into()))), vec!["1"]);
        }
        let fx = m.step(Event::Failed {
            pos: "1".into(),
            error: "corrupt".into(),
        });
        assert!(
            fx.iter()
                .any(|f| matches!(f, Effect::RecordError { error, .. } if error == "corrupt"))
        );
        let st = persisted(&fx).unwrap();
        assert_eq!((st.marker.as_str(), st.errors), ("1", 1));
        assert_eq!(m.last_error(), Some("corrupt"));
    }

    #[test]
    fn read_failures_back_off_and_retry_from_the_same_place() {
        let st = ShardStatus {
            phase: Phase::Incremental,
            marker: "5".into(),
            ..Default::default()
        };
        let mut m = ShardMachine::<E>::new(st, Tuning::default());
        m.step(Event::Start);
        assert_eq!(
            m.step(Event::ListFailed("refused".into())),
            vec![Effect::ListAfter(Duration::from_millis(200))]
        );
        assert_eq!(
            m.step(Event::ListFailed("refused".into())),
            vec![Effect::ListAfter(Duration::from_millis(400))]
        );
        assert_eq!(
            m.step(Event::RetryList),
            vec![Effect::ListLog {
                after: "5".into(),
                wait: false
            }]
        );
    }

    #[test]
    fn the_window_bounds_items_in_flight() {
        let st = ShardStatus {
            phase: Phase::Incremental,
            ..Default::default()
        };
        let tuning = Tuning {
            window: 2,
            ..Default::default()
        };
        let mut m = ShardMachine::new(st, tuning);
        m.step(Event::Start);
        let items: Vec<E> = (0..5)
            .map(|i| e(&format!("{i}"), &format!("k{i}")))
            .collect();
        let fx = m.step(Event::LogPage { items, more: true });
        assert_eq!(applies(&fx), vec!["0", "1"]);
        assert_eq!(applies(&m.step(Event::Applied("0".into()))), vec!["2"]);
        assert_eq!(m.pending(), 4);
    }
}
