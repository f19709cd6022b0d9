//! The PG log and PG info, persisted in the omap of each PG's meta object so
//! they change atomically with the objects they describe.
//!
//! Keys: `info` → [`PgInfo`] (without the log); `log.<epoch:016x>.<seq:016x>`
//! → [`LogEntry`]. Hex keys sort in version order, so the log reads back in
//! order and trims by range.

use crate::error::OsdError;
use bytes::Bytes;
use meridian_objectstore::{ObjectKey, ObjectStore, PgId, Transaction};
use meridian_proto::osd::{LogEntry, PgInfo, PgRef, Version};
use prost::Message as _;

/// Omap key of the PG info record.
pub const INFO_KEY: &[u8] = b"info";
const LOG_PREFIX: &[u8] = b"log.";

/// A version as a sortable pair.
pub type Ev = (u64, u64);

/// Converts a wire version.
pub fn ev(v: &Option<Version>) -> Ev {
    v.as_ref().map(|v| (v.epoch, v.seq)).unwrap_or((0, 0))
}

/// Converts to a wire version.
pub fn ver(e: Ev) -> Option<Version> {
    Some(Version {
        epoch: e.0,
        seq: e.1,
    })
}

/// Omap key of a log entry.
pub fn log_key(v: Ev) -> Bytes {
    Bytes::from(format!("log.{:016x}.{:016x}", v.0, v.1))
}

/// Wire PG reference of a store PG id.
pub fn pgref(pg: PgId) -> Option<PgRef> {
    Some(PgRef {
        pool: pg.pool,
        seed: pg.seed,
    })
}

/// Store PG id of a wire PG reference.
pub fn pgid(r: &Option<PgRef>) -> PgId {
    r.as_ref()
        .map(|r| PgId::new(r.pool, r.seed))
        .unwrap_or(PgId::new(0, 0))
}

/// The persisted summary of one PG copy (Ceph's pg_info_t with its history).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgSummary {
    /// Newest logged version.
    pub last_update: Ev,
    /// Versions at or below this are no longer in the log.
    pub log_tail: Ev,
    /// Epoch this copy last became active.
    pub last_epoch_started: u64,
    /// True while a backfill into this copy is incomplete.
    pub backfilling: bool,
    /// PG-wide history, merged from every copy peering heard from.
    pub history: PgHistory,
}

/// What a PG copy knows of the PG's life (Ceph's pg_history_t).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PgHistory {
    /// Epoch the pool (and so the PG) was created.
    pub epoch_created: u64,
    /// Epoch the PG last became active on its whole acting set.
    pub last_epoch_started: u64,
    /// Epoch the PG was last active+clean.
    pub last_epoch_clean: u64,
    /// First epoch of the interval this copy last took part in.
    pub same_interval_since: u64,
}

impl PgHistory {
    /// Takes the newer of each field (histories only move forward).
    pub fn merge(&mut self, o: &PgHistory) {
        if self.epoch_created == 0 || (o.epoch_created != 0 && o.epoch_created < self.epoch_created)
        {
            self.epoch_created = o.epoch_created;
        }
        self.last_epoch_started = self.last_epoch_started.max(o.last_epoch_started);
        self.last_epoch_clean = self.last_epoch_clean.max(o.last_epoch_clean);
        self.same_interval_since = self.same_interval_since.max(o.same_interval_since);
    }

    /// The history part of a wire info.
    pub fn of_info(i: &PgInfo) -> Self {
        Self {
            epoch_created: i.epoch_created,
            last_epoch_started: i.history_les,
            last_epoch_clean: i.history_lec,
            same_interval_since: i.same_interval_since,
        }
    }
}

impl PgSummary {
    /// Encodes as a wire PgInfo (no log).
    pub fn to_info(&self, pg: PgId) -> PgInfo {
        PgInfo {
            pg: pgref(pg),
            exists: true,
            last_update: ver(self.last_update),
            log_tail: ver(self.log_tail),
            last_epoch_started: self.last_epoch_started,
            log: vec![],
            object_count: 0,
            backfilling: self.backfilling,
            epoch_created: self.history.epoch_created,
            history_les: self.history.last_epoch_started,
            history_lec: self.history.last_epoch_clean,
            same_interval_since: self.history.same_interval_since,
        }
    }

    /// Decodes the summary part of a wire PgInfo.
    pub fn from_info(i: &PgInfo) -> Self {
        Self {
            last_update: ev(&i.last_update),
            log_tail: ev(&i.log_tail),
            last_epoch_started: i.last_epoch_started,
            backfilling: i.backfilling,
            history: PgHistory::of_info(i),
        }
    }
}

/// Adds "write the info record" to a transaction.
pub fn put_info(txn: Transaction, pg: PgId, s: &PgSummary) -> Transaction {
    txn.omap_set(
        &ObjectKey::meta(pg),
        vec![(
            Bytes::from_static(INFO_KEY),
            Bytes::from(s.to_info(pg).encode_to_vec()),
        )],
    )
}

/// Adds "append this entry" to a transaction.
pub fn put_entry(txn: Transaction, pg: PgId, e: &LogEntry) -> Transaction {
    txn.omap_set(
        &ObjectKey::meta(pg),
        vec![(log_key(ev(&e.version)), Bytes::from(e.encode_to_vec()))],
    )
}

/// Reads a PG copy's summary; `None` if this OSD holds nothing of the PG.
pub fn load_summary(store: &dyn ObjectStore, pg: PgId) -> Result<Option<PgSummary>, OsdError> {
    let v = store.omap_get_values(&ObjectKey::meta(pg), &[Bytes::from_static(INFO_KEY)]);
    match v {
        Ok(v) => match v.first() {
            Some((_, val)) => {
                let info = PgInfo::decode(val.as_ref())
                    .map_err(|e| OsdError::Decode(format!("pg {pg:?} info: {e}")))?;
                Ok(Some(PgSummary::from_info(&info)))
            }
            None => Ok(None),
        },
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Reads the whole log of a PG copy, oldest first.
pub fn load_log(store: &dyn ObjectStore, pg: PgId) -> Result<Vec<LogEntry>, OsdError> {
    let key = ObjectKey::meta(pg);
    let mut out = Vec::new();
    let mut after: Option<Bytes> = None;
    loop {
        let page = match store.omap_get(&key, after.as_deref(), LOG_PREFIX, 1024) {
            Ok(p) => p,
            Err(e) if e.is_not_found() => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        let n = page.len();
        for (k, v) in page {
            out.push(
                LogEntry::decode(v.as_ref())
                    .map_err(|e| OsdError::Decode(format!("pg {pg:?} log entry: {e}")))?,
            );
            after = Some(k);
        }
        if n < 1024 {
            return Ok(out);
        }
    }
}

/// Adds "replace the whole log with `log`" to a transaction.
pub fn replace_log(txn: Transaction, pg: PgId, log: &[LogEntry]) -> Transaction {
    let key = ObjectKey::meta(pg);
    let mut txn = txn.omap_rm_range(
        &key,
        Bytes::from_static(LOG_PREFIX),
        Bytes::from_static(b"log/"),
    );
    if !log.is_empty() {
        txn = txn.omap_set(
            &key,
            log.iter()
                .map(|e| (log_key(ev(&e.version)), Bytes::from(e.encode_to_vec())))
                .collect(),
        );
    }
    txn
}

/// Adds "trim entries at or below `upto`" to a transaction.
pub fn trim_to(txn: Transaction, pg: PgId, upto: Ev) -> Transaction {
    let end = format!("log.{:016x}.{:016x}\u{1}", upto.0, upto.1);
    txn.omap_rm_range(
        &ObjectKey::meta(pg),
        Bytes::from_static(LOG_PREFIX),
        Bytes::from(end),
    )
}
