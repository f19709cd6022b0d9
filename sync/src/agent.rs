//! Which syncs a zone runs, following the cluster map: metadata sync from
//! the metadata master (when this zone is not it) and data sync from every
//! other zone of its zonegroup that has endpoints and that the zonegroup's
//! sync policy lets this zone sync from. A committed period that changes
//! either restarts the affected syncs, with no process restart.

use crate::SyncSettings;
use crate::data::DataSync;
use crate::meta::MetaSync;
use crate::remote::RemoteZone;
use meridian_proto::mon::ClusterMap;
use meridian_proto::multisite::{SyncPolicy, Zonegroup};
use meridian_zone::Zone;
use meridian_zone::sync_policy::{self, ZoneRef};
use std::sync::Arc;
use std::time::Duration;

/// The syncs a zone should run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncPlan {
    /// Metadata master to sync from (None: this zone is the master or standalone).
    pub master: Option<(String, String, Vec<String>)>,
    /// Zones to sync data from: (name, id, endpoints).
    pub sources: Vec<(String, String, Vec<String>)>,
    /// The key this zone signs its requests with.
    pub key: Option<(String, String)>,
}

impl SyncPlan {
    /// What zone `zone` syncs in `map`'s current period.
    pub fn of(map: &ClusterMap, zone: &str) -> SyncPlan {
        let mut plan = SyncPlan::default();
        let Some(ms) = &map.multisite else {
            return plan;
        };
        let Some(local) = ms.zones.iter().find(|z| z.name == zone) else {
            return plan;
        };
        plan.key = local
            .system_key
            .as_ref()
            .filter(|k| !k.access_key.is_empty())
            .map(|k| (k.access_key.clone(), k.secret_key.clone()));
        let Some(realm) = ms.realms.iter().find(|r| r.id == local.realm_id) else {
            return plan;
        };
        let Some(p) = ms.periods.iter().find(|p| p.id == realm.current_period) else {
            return plan;
        };
        let Some(g) = p
            .zonegroups
            .iter()
            .find(|g| g.zones.iter().any(|z| z.id == local.id))
        else {
            return plan;
        };
        for z in g.zones.iter().filter(|z| z.id != local.id) {
            let eps = if z.endpoints.is_empty() {
                Vec::new()
            } else {
                z.endpoints.clone()
            };
            if eps.is_empty() {
                continue;
            }
            let local_in_zg = g.zones.iter().find(|x| x.id == local.id);
            let from_all = local_in_zg.is_none_or(|l| l.sync_from_all || l.sync_from.is_empty());
            let allowed = from_all
                || local_in_zg
                    .is_some_and(|l| l.sync_from.iter().any(|s| s == &z.name || s == &z.id));
            let admitted = sync_policy::pair_admitted(
                g.sync_policy.as_ref(),
                ZoneRef {
                    name: &z.name,
                    id: &z.id,
                },
                ZoneRef {
                    name: &local.name,
                    id: &local.id,
                },
            );
            if allowed && admitted {
                plan.sources.push((z.name.clone(), z.id.clone(), eps));
            }
        }
        if !p.master_zone.is_empty() && p.master_zone != local.id {
            let m = p
                .zonegroups
                .iter()
                .flat_map(|g| g.zones.iter())
                .find(|z| z.id == p.master_zone);
            if let Some(m) = m {
                plan.master = Some((m.name.clone(), m.id.clone(), m.endpoints.clone()));
            }
        }
        plan
    }

    /// Zone `zone`'s zonegroup as `map`'s current period has it.
    pub fn current_zonegroup<'a>(map: &'a ClusterMap, zone: &str) -> Option<&'a Zonegroup> {
        let ms = map.multisite.as_ref()?;
        let local = ms.zones.iter().find(|z| z.name == zone)?;
        let realm = ms.realms.iter().find(|r| r.id == local.realm_id)?;
        let p = ms.periods.iter().find(|p| p.id == realm.current_period)?;
        p.zonegroups
            .iter()
            .find(|g| g.zones.iter().any(|z| z.id == local.id))
    }

    /// The sync policy of zone `zone`'s zonegroup in `map`'s current period.
    pub fn zonegroup_policy(map: &ClusterMap, zone: &str) -> Option<SyncPolicy> {
        Self::current_zonegroup(map, zone)?.sync_policy.clone()
    }

    fn remote(&self, (name, id, eps): &(String, String, Vec<String>)) -> Option<RemoteZone> {
        let (ak, sk) = self.key.clone()?;
        Some(RemoteZone {
            name: name.clone(),
            id: id.clone(),
            endpoints: eps.clone(),
            key: meridian_proto::multisite::SystemKey {
                access_key: ak,
                secret_key: sk,
            },
            links: Default::default(),
        })
    }
}

struct Running {
    meta: Option<Arc<MetaSync>>,
    data: Vec<Arc<DataSync>>,
}

impl Running {
    fn stop(&self) {
        if let Some(m) = &self.meta {
            m.stop();
        }
        for d in &self.data {
            d.stop();
        }
    }
}

/// Runs the syncs of `local` forever, following the map. `metadata_only`:
/// no data sync (an agent between zonegroup masters).
pub async fn run(local: Zone, settings: SyncSettings, holder: String, metadata_only: bool) {
    let zone = local.params().zone.clone();
    run_plans(local, settings, holder, move |map| {
        let mut plan = SyncPlan::of(map, &zone);
        if metadata_only {
            plan.sources.clear();
        }
        plan
    })
    .await
}

/// Runs the syncs `plan_of` picks for each map, forever; a map that changes
/// the plan restarts the affected syncs.
pub async fn run_plans(
    local: Zone,
    settings: SyncSettings,
    holder: String,
    plan_of: impl Fn(&ClusterMap) -> SyncPlan,
) {
    let mut current = SyncPlan::default();
    let mut running = Running {
        meta: None,
        data: Vec::new(),
    };
    loop {
        let view = local.cluster().map();
        let plan = plan_of(&view.map);
        if plan != current {
            running.stop();
            running = Running {
                meta: None,
                data: Vec::new(),
            };
            if plan.key.is_none() && (plan.master.is_some() || !plan.sources.is_empty()) {
                tracing::warn!(zone = %local.params().zone, "zone has no system key: it cannot sync (zone modify --access-key --secret)");
            }
            if let Some(m) = plan.master.as_ref().and_then(|m| plan.remote(m)) {
                tracing::info!(master = %m.name, "metadata sync starts");
                let s = MetaSync::new(local.clone(), m, settings.clone(), holder.clone());
                tokio::spawn(s.clone().run());
                running.meta = Some(s);
            }
            for src in &plan.sources {
                if let Some(r) = plan.remote(src) {
                    tracing::info!(source = %r.name, "data sync starts");
                    let s = DataSync::new(local.clone(), r, settings.clone(), holder.clone());
                    tokio::spawn(s.clone().run());
                    running.data.push(s);
                }
            }
            if plan.master.is_none() && plan.sources.is_empty() {
                tracing::info!(zone = %local.params().zone, "nothing to sync in this period");
            }
            current = plan;
        }
        local
            .cluster()
            .wait_for_newer_map(view.epoch(), Duration::from_secs(30))
            .await;
    }
}
