//! The OSD's cache of the monitors' placement history: the maps at which
//! placement changed, fetched on demand (`GetMapHistory`) so that every PG
//! sees every interval, even across epochs the map subscription skipped or
//! the OSD slept through.

use meridian_client::{Credential, MapView, mon_client};
use meridian_proto::mon::MapHistoryRequest;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Why history could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// No monitor answered with history up to the wanted epoch.
    #[error("no monitor has map history up to epoch {0} yet: {1}")]
    Unavailable(u64, String),
}

/// Placement-changing maps known for a contiguous range of epochs.
#[derive(Default)]
pub struct HistoryCache {
    maps: BTreeMap<u64, Arc<MapView>>,
    /// Every placement change in `[lo, hi]` is in `maps`, plus the map in
    /// force at `lo` (if any history exists before it).
    lo: u64,
    hi: u64,
    /// The monitors' oldest kept epoch (nothing older can be fetched).
    first: u64,
}

impl HistoryCache {
    /// The map in force at `from`, then every placement change up to `to`.
    pub async fn range(
        &mut self,
        mons: &[String],
        cred: &Credential,
        from: u64,
        to: u64,
    ) -> Result<Vec<Arc<MapView>>, HistoryError> {
        let from = from.max(self.first).min(to);
        if self.maps.is_empty() || from < self.lo || to > self.hi {
            let (lo, hi) = if self.maps.is_empty() || from < self.lo {
                (from, to.max(self.hi))
            } else {
                (self.hi + 1, to)
            };
            self.fetch(mons, cred, lo, hi).await?;
        }
        let from = from.max(self.first);
        let mut out: Vec<Arc<MapView>> = Vec::new();
        if let Some((_, base)) = self.maps.range(..=from).next_back() {
            out.push(base.clone());
        }
        if from < to {
            out.extend(self.maps.range(from + 1..=to).map(|(_, m)| m.clone()));
        }
        Ok(out)
    }

    async fn fetch(
        &mut self,
        mons: &[String],
        cred: &Credential,
        lo: u64,
        hi: u64,
    ) -> Result<(), HistoryError> {
        let mut last_err = String::from("no monitor configured");
        for addr in mons {
            match self.fetch_from(addr, cred, lo, hi).await {
                Ok(()) => return Ok(()),
                Err(e) => last_err = format!("mon {addr}: {e}"),
            }
        }
        Err(HistoryError::Unavailable(hi, last_err))
    }

    async fn fetch_from(
        &mut self,
        addr: &str,
        cred: &Credential,
        lo: u64,
        hi: u64,
    ) -> Result<(), String> {
        let mut c = mon_client(addr, cred).map_err(|e| e.to_string())?;
        let mut from = lo;
        let mut got: BTreeMap<u64, Arc<MapView>> = BTreeMap::new();
        loop {
            let r = tokio::time::timeout(
                Duration::from_secs(5),
                c.get_map_history(MapHistoryRequest {
                    from_epoch: from,
                    to_epoch: hi,
                }),
            )
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|s| s.message().to_string())?
            .into_inner();
            if r.last_epoch < hi {
                return Err(format!("it is at epoch {}, behind {hi}", r.last_epoch));
            }
            self.first = self.first.max(r.first_epoch);
            let n = r.maps.len();
            for m in r.maps {
                got.insert(m.epoch, Arc::new(MapView::new(m)));
            }
            if !r.more || n == 0 {
                break;
            }
            from = got.keys().next_back().copied().unwrap_or(hi) + 1;
            if from > hi {
                break;
            }
        }
        if self.maps.is_empty() || lo < self.lo {
            self.lo = lo.max(self.first);
        }
        self.hi = self.hi.max(hi);
        self.maps.extend(got);
        Ok(())
    }

    /// Forgets maps no PG needs: older than `floor` (keeping the one in force there).
    pub fn trim(&mut self, floor: u64) {
        let Some(base) = self.maps.range(..=floor).next_back().map(|(e, _)| *e) else {
            return;
        };
        self.maps = self.maps.split_off(&base);
        self.lo = self.lo.max(base);
    }

    /// Maps cached (for the metrics).
    pub fn len(&self) -> usize {
        self.maps.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }
}
