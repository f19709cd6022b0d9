//! Series that alert rules depend on, registered (at zero if new) when a
//! sync starts.
//!
//! A Prometheus series that appears only on the first failure makes an
//! alert on it blind until then (`increase()` needs two samples), so every
//! per-source series exists, at zero, from the moment its sync starts.

/// Metric labels of a source zone.
pub(crate) fn source_labels(source: &str) -> [(&'static str, String); 1] {
    [("source_zone", source.to_string())]
}

/// Registers the data-sync series of `source` at zero.
pub(crate) fn register_data_source(source: &str) {
    let l = source_labels(source);
    for c in [
        "meridian_sync_entries_applied_total",
        "meridian_sync_entries_failed_total",
        "meridian_sync_errors_cleared_total",
        "meridian_sync_bytes_fetched_total",
        "meridian_sync_conflicts_total",
    ] {
        metrics::counter!(c, &l).increment(0);
    }
    // Registered, not set: a sync restarted in the same process (a new
    // period) keeps the last value rather than reporting zero lag.
    for g in ["meridian_sync_pending_entries", "meridian_sync_lag_seconds"] {
        let _ = metrics::gauge!(g, &l);
    }
}

/// Registers the metadata-sync series at zero.
pub(crate) fn register_metadata() {
    metrics::counter!("meridian_sync_metadata_applied_total").increment(0);
    metrics::counter!("meridian_sync_metadata_failed_total").increment(0);
    let _ = metrics::gauge!("meridian_sync_metadata_pending_entries");
}

/// Whether the last call to `source`'s log positions was answered.
pub(crate) fn source_reachable(source: &str, up: bool) {
    metrics::gauge!("meridian_sync_source_reachable", &source_labels(source)).set(if up {
        1.0
    } else {
        0.0
    });
}

/// Moves a pending-entries total by `now - before` and returns the new total.
pub(crate) fn move_pending(
    total: &std::sync::atomic::AtomicUsize,
    before: usize,
    now: usize,
) -> usize {
    use std::sync::atomic::Ordering::SeqCst;
    if now >= before {
        total.fetch_add(now - before, SeqCst) + (now - before)
    } else {
        total.fetch_sub(before - now, SeqCst) - (before - now)
    }
}
