//! Multi-site sync: replicates a zone's metadata (users, buckets) from the
//! metadata master and its data (objects, versions, deletes) from every
//! other zone of its zonegroup, as Ceph RGW's sync does: full sync first,
//! then incremental sync from the source's logs, with markers persisted in
//! the destination zone's log pool so any gateway or agent resumes where
//! the last one stopped.
//!
//! The pieces: [`machine`] (the per-shard state machine, pure), [`tracker`]
//! (markers over out-of-order applies, pure), [`mdlog`] (reading prepared /
//! committed metadata log entries, pure), [`drive`] (runs a machine's
//! effects), [`data`] and [`meta`] (what a shard applies), [`remote`] (the
//! source zone over gRPC), [`status`] (persisted state, error and conflict
//! logs, leases), [`agent`] (which syncs run, following the period), [`pair`]
//! (a standalone agent's source→destination config), and
//! [`report`] (`sync status`), `telemetry` (the series alert rules
//! read). Conflict resolution lives with the index, in
//! `meridian_zone::replica`.

pub mod agent;
pub mod batch;
pub mod data;
pub mod drive;
pub mod machine;
pub mod mdlog;
pub mod meta;
pub mod pair;
pub mod peer;
pub mod remote;
pub mod report;
pub mod status;
mod telemetry;
pub mod tracker;

use std::time::Duration;

/// Why a sync step failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The source zone refused or could not be reached.
    #[error("source zone: {0}")]
    Remote(String),
    /// The source's answer made no sense.
    #[error("corrupt answer or record: {0}")]
    Corrupt(String),
    /// The local zone failed.
    #[error("local zone: {0}")]
    Local(String),
    /// The endpoint answered as another zone.
    #[error("the endpoints of {expected} answer as zone {found}")]
    WrongZone {
        /// The zone meant.
        expected: String,
        /// The zone that answered.
        found: String,
    },
    /// Another worker took the shard over.
    #[error("lease {0} was taken over by another worker")]
    LeaseLost(String),
    /// The sync is stopping.
    #[error("stopped")]
    Stopped,
}

impl From<tonic::Status> for SyncError {
    fn from(s: tonic::Status) -> Self {
        SyncError::Remote(s.message().to_string())
    }
}

impl From<meridian_zone::ZoneError> for SyncError {
    fn from(e: meridian_zone::ZoneError) -> Self {
        SyncError::Local(e.to_string())
    }
}

impl From<meridian_client::ClientError> for SyncError {
    fn from(e: meridian_client::ClientError) -> Self {
        SyncError::Local(e.to_string())
    }
}

/// Tuning of the sync engine (from the cluster config's `rgw_sync_*`).
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Entries applied at once per shard.
    pub window: usize,
    /// Entries applied at once per bucket shard in full sync (group commit).
    pub full_window: usize,
    /// Longest wait of a long poll on the source's log positions.
    pub long_poll: Duration,
    /// An idle shard reads its log at least this often (a safety net: the
    /// long poll wakes it on every change).
    pub idle_recheck: Duration,
    /// How often every bucket shard's log is compared with its marker.
    pub reconcile: Duration,
    /// A prepared metadata change without commit counts as done after this.
    pub md_settle: Duration,
    /// Lease duration.
    pub lease: Duration,
    /// Longest pause between error log retry passes.
    pub error_retry_max: Duration,
    /// An object stream may stall this long.
    pub fetch_idle: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            window: 16,
            full_window: 64,
            long_poll: Duration::from_secs(30),
            idle_recheck: Duration::from_secs(600),
            reconcile: Duration::from_secs(60),
            md_settle: Duration::from_secs(30),
            lease: Duration::from_secs(30),
            error_retry_max: Duration::from_secs(30),
            fetch_idle: Duration::from_secs(60),
        }
    }
}

impl SyncSettings {
    /// The settings of the cluster config.
    pub fn from_global(g: &meridian_common::GlobalSection) -> Self {
        Self {
            window: g.rgw_sync_window.max(1) as usize,
            full_window: g.rgw_sync_full_window.max(1) as usize,
            reconcile: Duration::from_secs(g.rgw_sync_reconcile_s.max(1)),
            md_settle: Duration::from_millis(g.rgw_sync_md_settle_ms),
            lease: Duration::from_secs(g.rgw_sync_lease_s.max(3)),
            ..Self::default()
        }
    }
}
