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
//! read), [`trim`] (bounded logs: trimming through what every peer has
//! read, and the health warnings of peers that hold them back). Conflict resolution lives with the index, in
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
pub mod trim;

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
    /// How often this zone's logs are trimmed through its peers' markers.
    pub log_trim_interval: Duration,
    /// A peer this far behind this zone's logs raises a health warning.
    pub log_trim_warn_lag: Duration,
    /// Object bytes fetched per second, shared by every sync of the process.
    pub bandwidth: std::sync::Arc<Bandwidth>,
}

/// A limit on bytes per second shared by many streams: each chunk reserves
/// the next `len / rate` seconds of a virtual clock and waits until its
/// slot ends, so the total never runs ahead of the rate, however many
/// fetches are in flight.
#[derive(Debug, Default)]
pub struct Bandwidth {
    /// Bytes per second (0: unlimited).
    rate: u64,
    next: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl Bandwidth {
    /// A limit of `rate` bytes per second (0: none).
    pub fn new(rate: u64) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            rate,
            next: std::sync::Mutex::new(None),
        })
    }

    /// Waits until `n` more bytes fit under the limit.
    pub async fn take(&self, n: u64) {
        if self.rate == 0 || n == 0 {
            return;
        }
        let until = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let now = tokio::time::Instant::now();
            let start = next.map_or(now, |t| t.max(now));
            let end = start + Duration::from_secs_f64(n as f64 / self.rate as f64);
            *next = Some(end);
            end
        };
        tokio::time::sleep_until(until).await;
    }

    /// `body`, paced by this limit and counted as it is let through
    /// (`meridian_sync_bytes_received_total`).
    pub fn throttle(
        self: &std::sync::Arc<Self>,
        body: meridian_zone::data::Body,
    ) -> meridian_zone::data::Body {
        use futures::StreamExt as _;
        let me = self.clone();
        Box::pin(body.then(move |chunk| {
            let me = me.clone();
            async move {
                if let Ok(b) = &chunk {
                    me.take(b.len() as u64).await;
                    metrics::counter!("meridian_sync_bytes_received_total")
                        .increment(b.len() as u64);
                }
                chunk
            }
        }))
    }
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
            log_trim_interval: Duration::from_secs(60),
            log_trim_warn_lag: Duration::from_secs(600),
            bandwidth: Bandwidth::new(0),
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
            log_trim_interval: Duration::from_secs(g.rgw_sync_log_trim_interval_s.max(1)),
            log_trim_warn_lag: Duration::from_secs(g.rgw_sync_log_trim_warn_lag_s.max(1)),
            bandwidth: Bandwidth::new(g.rgw_sync_max_bandwidth),
            ..Self::default()
        }
    }
}
