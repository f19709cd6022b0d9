//! A decoded cluster map with placement: object → PG → acting set, computed
//! locally exactly as every OSD computes it.

use meridian_crush::CrushMap;
use meridian_proto::mon::{ClusterMap, OsdInfo, Pool};
use std::collections::HashMap;

/// A placement group: pool id and PG seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PgId {
    /// Pool id.
    pub pool: u64,
    /// PG number within the pool.
    pub seed: u32,
}

impl std::fmt::Display for PgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:x}", self.pool, self.seed)
    }
}

/// The cluster map plus its parsed CRUSH map, ready for placement queries.
#[derive(Debug, Clone)]
pub struct MapView {
    /// The raw map as the monitors sent it.
    pub map: ClusterMap,
    crush: Option<CrushMap>,
    osd_weights: Vec<u32>,
    osds: HashMap<u32, OsdInfo>,
}

impl MapView {
    /// Decodes the CRUSH text once; a map whose CRUSH does not parse places nothing.
    pub fn new(map: ClusterMap) -> Self {
        let crush = match meridian_crush::binary::decode(&map.crush) {
            Ok(c) => Some(c),
            Err(e) => {
                if !map.crush.is_empty() {
                    tracing::error!(epoch = map.epoch, error = %e, "CRUSH map in cluster map does not parse");
                }
                None
            }
        };
        let max = map
            .osds
            .iter()
            .map(|o| o.id as usize + 1)
            .max()
            .unwrap_or(0);
        let mut osd_weights = vec![0u32; max];
        for o in &map.osds {
            osd_weights[o.id as usize] = if o.r#in { o.reweight } else { 0 };
        }
        let osds = map.osds.iter().map(|o| (o.id, o.clone())).collect();
        Self {
            map,
            crush,
            osd_weights,
            osds,
        }
    }

    /// The decoded CRUSH map (None before bootstrap).
    pub fn crush(&self) -> Option<&CrushMap> {
        self.crush.as_ref()
    }

    /// The map epoch.
    pub fn epoch(&self) -> u64 {
        self.map.epoch
    }

    /// The pool called `name`.
    pub fn pool_by_name(&self, name: &str) -> Option<&Pool> {
        self.map.pools.iter().find(|p| p.name == name)
    }

    /// The pool with id `id`.
    pub fn pool(&self, id: u64) -> Option<&Pool> {
        self.map.pools.iter().find(|p| p.id == id)
    }

    /// An OSD's entry.
    pub fn osd(&self, id: u32) -> Option<&OsdInfo> {
        self.osds.get(&id)
    }

    /// True when the OSD exists and is up.
    pub fn is_up(&self, id: u32) -> bool {
        self.osds.get(&id).map(|o| o.up).unwrap_or(false)
    }

    /// The PG an object name maps to (Ceph's rjenkins hash + stable_mod).
    pub fn object_pg(pool: &Pool, name: &str) -> PgId {
        PgId {
            pool: pool.id,
            seed: meridian_crush::object_to_pg(pool.id, pool.pg_num, name),
        }
    }

    /// CRUSH's raw choice for a PG, before removing down OSDs (Ceph's "raw" set).
    pub fn pg_raw(&self, pool: &Pool, seed: u32) -> Vec<u32> {
        let Some(crush) = &self.crush else {
            return Vec::new();
        };
        let x = meridian_crush::raw_pg_to_pps(pool.id, seed, pool.pgp_num.max(1), true);
        crush
            .do_rule(pool.crush_rule, x, pool.size as usize, &self.osd_weights)
            .into_iter()
            .filter(|o| *o >= 0)
            .map(|o| o as u32)
            .collect()
    }

    /// The acting set: CRUSH's choice minus down OSDs; the first is the primary.
    pub fn pg_acting(&self, pool: &Pool, seed: u32) -> Vec<u32> {
        self.pg_raw(pool, seed)
            .into_iter()
            .filter(|o| self.is_up(*o))
            .collect()
    }

    /// The acting set of a PG by id (empty if the pool is gone).
    pub fn acting(&self, pg: PgId) -> Vec<u32> {
        match self.pool(pg.pool) {
            Some(p) if pg.seed < p.pg_num => self.pg_acting(p, pg.seed),
            _ => Vec::new(),
        }
    }

    /// Every PG of every pool.
    pub fn all_pgs(&self) -> impl Iterator<Item = PgId> + '_ {
        self.map.pools.iter().flat_map(|p| {
            (0..p.pg_num).map(move |s| PgId {
                pool: p.id,
                seed: s,
            })
        })
    }
}
