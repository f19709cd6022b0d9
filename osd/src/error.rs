//! Typed errors of the OSD daemon.

use meridian_objectstore::StoreError;

/// What can go wrong inside the OSD.
#[derive(Debug, thiserror::Error)]
pub enum OsdError {
    /// The object store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A persisted record does not decode.
    #[error("undecodable record: {0}")]
    Decode(String),
    /// A peer OSD did not answer or refused.
    #[error("peer osd.{osd}: {reason}")]
    Peer { osd: u32, reason: String },
    /// The map changed under a long operation (peering restarts).
    #[error("map changed (interval {0} ended)")]
    IntervalChanged(u64),
    /// A blocking task panicked or was cancelled.
    #[error("internal: {0}")]
    Internal(String),
}
