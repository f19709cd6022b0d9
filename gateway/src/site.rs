//! A gateway's place in the realm, derived from the cluster map (and
//! followed as the map changes, so a committed period takes effect without a
//! restart): its zone, whether that zone is the metadata master, where the
//! master is, and whether the zone is read-only.

use meridian_client::Cluster;
use meridian_proto::mon::ClusterMap;
use meridian_proto::multisite::{Period, Realm, SystemKey};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// What a gateway of `zone` is in the current configuration.
#[derive(Debug, Clone, Default)]
pub struct SiteRole {
    /// Zone served.
    pub zone: String,
    /// Its id ("" when the zone is not configured in any realm).
    pub zone_id: String,
    /// Zonegroup name ("" when standalone).
    pub zonegroup: String,
    /// The realm, if the zone is in one.
    pub realm: Option<Realm>,
    /// The realm's current period.
    pub period: Option<Period>,
    /// True when this zone is the metadata master (or standalone).
    pub is_master: bool,
    /// The master zone's name and endpoints (when this zone is not it).
    pub master_zone: String,
    /// Endpoints of the master zone.
    pub master_endpoints: Vec<String>,
    /// Writes are refused.
    pub read_only: bool,
    /// This zone's system key (signs zone-to-zone requests).
    pub system_key: Option<SystemKey>,
    /// Endpoints of every other zone of the period (for period pushes).
    pub peers: Vec<(String, Vec<String>)>,
}

impl SiteRole {
    /// The role of `zone` in `map`.
    pub fn of(map: &ClusterMap, zone: &str) -> SiteRole {
        let mut role = SiteRole {
            zone: zone.to_string(),
            is_master: true,
            ..Default::default()
        };
        let Some(ms) = &map.multisite else {
            return role;
        };
        let Some(local) = ms.zones.iter().find(|z| z.name == zone) else {
            return role;
        };
        role.zone_id = local.id.clone();
        role.read_only = local.read_only;
        role.system_key = local.system_key.clone();
        let Some(g) = ms
            .zonegroups
            .iter()
            .find(|g| g.zones.iter().any(|z| z.id == local.id))
        else {
            return role;
        };
        role.zonegroup = g.name.clone();
        let Some(realm) = ms.realms.iter().find(|r| r.id == g.realm_id) else {
            return role;
        };
        role.realm = Some(realm.clone());
        let Some(p) = ms.periods.iter().find(|p| p.id == realm.current_period) else {
            return role;
        };
        role.period = Some(p.clone());
        let zones: Vec<_> = p.zonegroups.iter().flat_map(|g| g.zones.iter()).collect();
        role.peers = zones
            .iter()
            .filter(|z| z.id != local.id)
            .map(|z| (z.name.clone(), z.endpoints.clone()))
            .collect();
        if !p.master_zone.is_empty() && p.master_zone != local.id {
            role.is_master = false;
            if let Some(m) = zones.iter().find(|z| z.id == p.master_zone) {
                role.master_zone = m.name.clone();
                role.master_endpoints = m.endpoints.clone();
            }
            if role.master_endpoints.is_empty()
                && let Some(mg) = p.zonegroups.iter().find(|g| g.id == p.master_zonegroup)
            {
                role.master_endpoints = mg.endpoints.clone();
            }
        }
        role
    }
}

/// The current role, kept up to date from the map subscription.
#[derive(Clone)]
pub struct Site {
    role: Arc<RwLock<Arc<SiteRole>>>,
    writes: Arc<AtomicU64>,
}

/// One S3 request that may change data, counted while it runs.
pub struct WriteInFlight(Arc<AtomicU64>);

impl Drop for WriteInFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Site {
    /// Follows `cluster`'s maps for `zone`.
    pub fn follow(cluster: Cluster, zone: String) -> Site {
        let first = SiteRole::of(&cluster.map().map, &zone);
        let site = Site {
            role: Arc::new(RwLock::new(Arc::new(first))),
            writes: Default::default(),
        };
        let s = site.clone();
        tokio::spawn(async move {
            loop {
                let view = cluster.map();
                let role = Arc::new(SiteRole::of(&view.map, &zone));
                *s.role.write().unwrap_or_else(|p| p.into_inner()) = role;
                cluster
                    .wait_for_newer_map(view.epoch(), Duration::from_secs(30))
                    .await;
            }
        });
        site
    }

    /// A fixed role (tests, tools).
    pub fn fixed(role: SiteRole) -> Site {
        Site {
            role: Arc::new(RwLock::new(Arc::new(role))),
            writes: Default::default(),
        }
    }

    /// Counts a request that may write until the guard drops. Taken before
    /// the request reads the role, so once the zone is read-only and the
    /// count is zero, no write admitted earlier can still land (what a
    /// planned failover waits for).
    pub fn write_started(&self) -> WriteInFlight {
        self.writes.fetch_add(1, Ordering::SeqCst);
        WriteInFlight(self.writes.clone())
    }

    /// Requests that may write, running now.
    pub fn writes_in_flight(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// The role now.
    pub fn role(&self) -> Arc<SiteRole> {
        self.role.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
