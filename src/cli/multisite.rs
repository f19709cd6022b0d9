//! `realm`, `zonegroup`, `zone` and `period`: the multi-site configuration,
//! with radosgw-admin's commands, flags and JSON. Changes go through the
//! monitors (one Raft entry each); pulls, pushes and forwarded commits go to
//! other zones' endpoints, signed with a system key.

use super::Ctx;
use anyhow::{Context as _, bail};
use meridian_client::Cluster;
use meridian_gateway::peer;
use meridian_proto::mon::mon_command::Cmd;
use meridian_proto::multisite::multisite_command::Cmd as M;
use meridian_proto::multisite::*;
use meridian_zone::{ZonePools, random_uuid};
use serde_json::{Value, json};
use std::time::Duration;

/// A bool flag that may also be written `--flag=false` (radosgw-admin style).
fn flag(s: &str) -> Result<bool, String> {
    match s {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        o => Err(format!("{o:?}: use true or false")),
    }
}

fn endpoints(s: &Option<String>) -> Vec<String> {
    s.as_deref()
        .map(|e| {
            e.split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The remote zone and keys of a pull.
#[derive(clap::Args, Debug, Clone)]
pub struct Remote {
    /// Endpoint of a zone of the realm (its gateway), e.g. http://rgw-east:7480.
    #[arg(long)]
    pub url: String,
    /// A system key of that zone.
    #[arg(long = "access-key")]
    pub access_key: String,
    #[arg(long = "secret", visible_alias = "secret-key")]
    pub secret: String,
}

/// `meridian realm ...`.
#[derive(clap::Subcommand, Debug)]
pub enum RealmCmd {
    /// Create a realm (with its first, empty period).
    Create {
        #[arg(long = "rgw-realm", visible_alias = "realm")]
        realm: String,
        #[arg(long)]
        default: bool,
    },
    /// Show a realm.
    Get {
        #[arg(long = "rgw-realm", visible_alias = "realm", default_value = "")]
        realm: String,
    },
    /// List realms.
    List,
    /// Make a realm the default.
    Default {
        #[arg(long = "rgw-realm", visible_alias = "realm")]
        realm: String,
    },
    /// Rename a realm.
    Rename {
        #[arg(long = "rgw-realm", visible_alias = "realm")]
        realm: String,
        #[arg(long = "realm-new-name")]
        new_name: String,
    },
    /// Remove a realm (it must have no zonegroups).
    Rm {
        #[arg(long = "rgw-realm", visible_alias = "realm")]
        realm: String,
    },
    /// Fetch a realm and its current period from a zone of it.
    Pull {
        #[command(flatten)]
        remote: Remote,
        #[arg(long = "rgw-realm", visible_alias = "realm", default_value = "")]
        realm: String,
        #[arg(long)]
        default: bool,
    },
}

/// `meridian zonegroup ...`.
#[derive(clap::Subcommand, Debug)]
pub enum ZonegroupCmd {
    /// Create a zonegroup in a realm.
    Create {
        #[arg(long = "rgw-zonegroup", visible_alias = "zonegroup")]
        zonegroup: String,
        #[arg(long = "rgw-realm", visible_alias = "realm", default_value = "")]
        realm: String,
        #[arg(long)]
        endpoints: Option<String>,
        /// The realm's master zonegroup.
        #[arg(long)]
        master: bool,
        #[arg(long)]
        default: bool,
    },
    /// Show a zonegroup.
    Get {
        #[arg(
            long = "rgw-zonegroup",
            visible_alias = "zonegroup",
            default_value = ""
        )]
        zonegroup: String,
    },
    /// List zonegroups.
    List,
    /// Change a zonegroup.
    Modify {
        #[arg(
            long = "rgw-zonegroup",
            visible_alias = "zonegroup",
            default_value = ""
        )]
        zonegroup: String,
        #[arg(long)]
        endpoints: Option<String>,
        /// Zone to make the master zone.
        #[arg(long = "master-zone")]
        master_zone: Option<String>,
        #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = flag)]
        master: Option<bool>,
        #[arg(long)]
        default: bool,
    },
    /// Add a zone of this cluster to a zonegroup.
    Add {
        #[arg(long = "rgw-zonegroup", visible_alias = "zonegroup")]
        zonegroup: String,
        #[arg(long = "rgw-zone", visible_alias = "zone")]
        zone: String,
    },
    /// Remove a zone from a zonegroup.
    Remove {
        #[arg(long = "rgw-zonegroup", visible_alias = "zonegroup")]
        zonegroup: String,
        #[arg(long = "rgw-zone", visible_alias = "zone")]
        zone: String,
    },
    /// Remove a zonegroup (it must have no zones).
    Rm {
        #[arg(long = "rgw-zonegroup", visible_alias = "zonegroup")]
        zonegroup: String,
    },
    /// Make a zonegroup the default.
    Default {
        #[arg(long = "rgw-zonegroup", visible_alias = "zonegroup")]
        zonegroup: String,
    },
}

/// `meridian zone ...`.
#[derive(clap::Subcommand, Debug)]
pub enum ZoneCmd {
    /// Create a zone of this cluster in a zonegroup.
    Create {
        #[arg(
            long = "rgw-zonegroup",
            visible_alias = "zonegroup",
            default_value = ""
        )]
        zonegroup: String,
        #[arg(long = "rgw-zone", visible_alias = "zone")]
        zone: String,
        #[arg(long)]
        endpoints: Option<String>,
        /// System key the zone signs zone-to-zone requests with.
        #[arg(long = "access-key")]
        access_key: Option<String>,
        #[arg(long = "secret", visible_alias = "secret-key")]
        secret: Option<String>,
        /// The zonegroup's master zone.
        #[arg(long)]
        master: bool,
        #[arg(long)]
        default: bool,
        #[arg(long = "read-only", num_args = 0..=1, default_missing_value = "true", value_parser = flag)]
        read_only: Option<bool>,
    },
    /// Show a zone of this cluster.
    Get {
        #[arg(long = "rgw-zone", visible_alias = "zone", default_value = "")]
        zone: String,
    },
    /// List the zones of this cluster.
    List,
    /// Change a zone.
    Modify {
        #[arg(long = "rgw-zone", visible_alias = "zone")]
        zone: String,
        #[arg(
            long = "rgw-zonegroup",
            visible_alias = "zonegroup",
            default_value = ""
        )]
        zonegroup: String,
        #[arg(long)]
        endpoints: Option<String>,
        #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = flag)]
        master: Option<bool>,
        #[arg(long = "read-only", num_args = 0..=1, default_missing_value = "true", value_parser = flag)]
        read_only: Option<bool>,
        #[arg(long = "access-key")]
        access_key: Option<String>,
        #[arg(long = "secret", visible_alias = "secret-key")]
        secret: Option<String>,
        #[arg(long)]
        default: bool,
        /// Accepted for emergency failover runbooks (no effect).
        #[arg(long = "yes-i-really-mean-it")]
        yes: bool,
    },
    /// Remove a zone of this cluster.
    Rm {
        #[arg(long = "rgw-zone", visible_alias = "zone")]
        zone: String,
    },
    /// Make a zone the default.
    Default {
        #[arg(long = "rgw-zone", visible_alias = "zone")]
        zone: String,
    },
    /// Planned failover in one command: make the master read-only, wait
    /// until ZONE has every change, promote it, commit, lift read-only.
    Failover(super::failover::FailoverArgs),
}

/// `meridian period ...`.
#[derive(clap::Subcommand, Debug)]
pub enum PeriodCmd {
    /// Build the staging period; `--commit` commits it (forwarded to the master zone when it is elsewhere).
    Update {
        #[arg(long = "rgw-realm", visible_alias = "realm", default_value = "")]
        realm: String,
        #[arg(long)]
        commit: bool,
    },
    /// Commit the staging period built by `period update`.
    Commit {
        #[arg(long = "rgw-realm", visible_alias = "realm", default_value = "")]
        realm: String,
    },
    /// Show a period (default: the current one).
    Get {
        #[arg(long = "rgw-realm", visible_alias = "realm", default_value = "")]
        realm: String,
        #[arg(long = "period-id", visible_alias = "period", default_value = "")]
        period_id: String,
    },
    /// The current period's id.
    GetCurrent {
        #[arg(long = "rgw-realm", visible_alias = "realm", default_value = "")]
        realm: String,
    },
    /// Every period known here.
    List,
    /// Fetch the current period from a zone of the realm.
    Pull {
        #[command(flatten)]
        remote: Remote,
        #[arg(long = "rgw-realm", visible_alias = "realm", default_value = "")]
        realm: String,
    },
}

fn print(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub(crate) async fn state(c: &Cluster) -> MultisiteState {
    // Catch up with the leader's epoch first: the monitor this process
    // subscribed to may be a follower a beat behind a commit another
    // process just made, and a read right after that write must see it.
    if let Ok(st) = c.status().await {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while c.map().epoch() < st.epoch && std::time::Instant::now() < deadline {
            c.wait_for_newer_map(c.map().epoch(), Duration::from_millis(500))
                .await;
        }
    }
    c.map().map.multisite.clone().unwrap_or_default()
}

/// Runs a multisite command on the monitors and waits until our map has it.
pub(crate) async fn run(c: &Cluster, cmd: M) -> anyhow::Result<String> {
    let r = c
        .mon_command(Cmd::Multisite(MultisiteCommand { cmd: Some(cmd) }))
        .await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while c.map().epoch() < r.epoch && std::time::Instant::now() < deadline {
        c.wait_for_newer_map(c.map().epoch(), Duration::from_millis(500))
            .await;
    }
    Ok(r.message)
}

fn realm_of<'a>(ms: &'a MultisiteState, name: &str) -> anyhow::Result<&'a Realm> {
    meridian_mon::multisite::realm(ms, name).map_err(|e| anyhow::anyhow!("{e}"))
}

fn zonegroup_of<'a>(ms: &'a MultisiteState, name: &str) -> anyhow::Result<&'a Zonegroup> {
    meridian_mon::multisite::zonegroup(ms, name).map_err(|e| anyhow::anyhow!("{e}"))
}

/// radosgw-admin's realm JSON.
pub fn realm_json(r: &Realm) -> Value {
    json!({"id": r.id, "name": r.name, "current_period": r.current_period, "epoch": r.epoch})
}

fn zone_entry_json(z: &Zone) -> Value {
    json!({
        "id": z.id, "name": z.name, "endpoints": z.endpoints,
        "log_meta": z.log_meta, "log_data": z.log_data,
        "bucket_index_max_shards": z.bucket_index_max_shards,
        "read_only": z.read_only, "tier_type": z.tier_type,
        "sync_from_all": z.sync_from_all, "sync_from": z.sync_from, "redirect_zone": "",
        "supported_features": ["resharding"],
    })
}

/// radosgw-admin's zonegroup JSON.
pub fn zonegroup_json(g: &Zonegroup) -> Value {
    json!({
        "id": g.id, "name": g.name, "api_name": g.api_name, "is_master": g.is_master,
        "endpoints": g.endpoints, "hostnames": [], "hostnames_s3website": [],
        "master_zone": g.master_zone,
        "zones": g.zones.iter().map(zone_entry_json).collect::<Vec<_>>(),
        "placement_targets": g.placement_targets.iter().map(|p| json!({
            "name": p.name, "tags": [], "storage_classes": p.storage_classes,
        })).collect::<Vec<_>>(),
        "default_placement": g.default_placement,
        "realm_id": g.realm_id,
        "sync_policy": super::syncpolicy::policy_json(&g.sync_policy.clone().unwrap_or_default()),
        "enabled_features": ["resharding"],
    })
}

/// radosgw-admin's zone JSON (the pools are this zone's Meridian pools).
pub fn zone_json(z: &Zone) -> Value {
    let p = ZonePools::for_zone(&z.name);
    let key = z.system_key.clone().unwrap_or_default();
    json!({
        "id": z.id, "name": z.name,
        "domain_root": format!("{}:root", p.meta),
        "control_pool": format!("{}:control", p.log),
        "gc_pool": format!("{}:gc", p.log),
        "lc_pool": format!("{}:lc", p.log),
        "log_pool": p.log,
        "intent_log_pool": format!("{}:intent", p.log),
        "usage_log_pool": format!("{}:usage", p.log),
        "roles_pool": format!("{}:roles", p.meta),
        "reshard_pool": format!("{}:reshard", p.log),
        "user_keys_pool": format!("{}:users.keys", p.meta),
        "user_email_pool": format!("{}:users.email", p.meta),
        "user_swift_pool": format!("{}:users.swift", p.meta),
        "user_uid_pool": format!("{}:users.uid", p.meta),
        "otp_pool": format!("{}:otp", p.log),
        "system_key": {"access_key": key.access_key, "secret_key": key.secret_key},
        "placement_pools": [{"key": "default-placement", "val": {
            "index_pool": p.index,
            "storage_classes": {"STANDARD": {"data_pool": p.data}},
            "data_extra_pool": format!("{}.non-ec", p.data),
            "index_type": 0, "inline_data": false,
        }}],
        "realm_id": z.realm_id,
        "notif_pool": format!("{}:notif", p.log),
        "endpoints": z.endpoints,
        "read_only": z.read_only,
    })
}

/// radosgw-admin's period JSON.
pub fn period_json(p: &Period) -> Value {
    let quota = json!({"enabled": false, "check_on_raw": false, "max_size": -1, "max_size_kb": 0, "max_objects": -1});
    let zones: Vec<&Zone> = p.zonegroups.iter().flat_map(|g| g.zones.iter()).collect();
    json!({
        "id": p.id, "epoch": p.epoch, "predecessor_uuid": p.predecessor,
        "sync_status": [],
        "period_map": {
            "id": p.id,
            "zonegroups": p.zonegroups.iter().map(zonegroup_json).collect::<Vec<_>>(),
            "short_zone_ids": zones.iter().map(|z| json!({"key": z.id, "val": meridian_zone::shard_hash(z.id.as_bytes())})).collect::<Vec<_>>(),
        },
        "master_zonegroup": p.master_zonegroup, "master_zone": p.master_zone,
        "period_config": {"bucket_quota": quota, "user_quota": quota},
        "realm_id": p.realm_id, "realm_epoch": p.realm_epoch,
    })
}

fn system_key(
    access: &Option<String>,
    secret: &Option<String>,
) -> anyhow::Result<Option<SystemKey>> {
    match (access, secret) {
        (Some(a), Some(s)) => Ok(Some(SystemKey {
            access_key: a.clone(),
            secret_key: s.clone(),
        })),
        (None, None) => Ok(None),
        _ => bail!("--access-key and --secret go together"),
    }
}

/// `meridian realm ...`.
pub async fn realm(ctx: &Ctx, cmd: RealmCmd) -> anyhow::Result<()> {
    let c = &ctx.connect().await?;
    match cmd {
        RealmCmd::Create { realm, default } => {
            run(
                c,
                M::RealmCreate(RealmCreate {
                    id: random_uuid(),
                    name: realm.clone(),
                    period_id: random_uuid(),
                    default,
                }),
            )
            .await?;
            print(&realm_json(realm_of(&state(c).await, &realm)?));
        }
        RealmCmd::Get { realm } => print(&realm_json(realm_of(&state(c).await, &realm)?)),
        RealmCmd::List => {
            let ms = state(c).await;
            print(
                &json!({"default_info": ms.default_realm, "realms": ms.realms.iter().map(|r| r.name.clone()).collect::<Vec<_>>()}),
            );
        }
        RealmCmd::Default { realm } => {
            run(c, M::RealmDefault(NameRef { name: realm })).await?;
        }
        RealmCmd::Rename { realm, new_name } => {
            run(
                c,
                M::RealmRename(Rename {
                    name: realm,
                    new_name,
                }),
            )
            .await?;
        }
        RealmCmd::Rm { realm } => {
            run(c, M::RealmRm(NameRef { name: realm })).await?;
        }
        RealmCmd::Pull {
            remote,
            realm,
            default,
        } => {
            let key = SystemKey {
                access_key: remote.access_key.clone(),
                secret_key: remote.secret.clone(),
            };
            let req = PullRealmRequest { auth: None, realm };
            let reply = peer::on_any(std::slice::from_ref(&remote.url), |mut z| {
                let req = peer::sign(req.clone(), &key);
                async move { z.pull_realm(req).await }
            })
            .await
            .map_err(|s| remote_error(&remote.url, s))?;
            let r = reply.realm.context("the remote zone sent no realm")?;
            run(
                c,
                M::PeriodInstall(PeriodInstall {
                    realm: Some(r.clone()),
                    period: reply.period,
                }),
            )
            .await?;
            if default {
                run(
                    c,
                    M::RealmDefault(NameRef {
                        name: r.name.clone(),
                    }),
                )
                .await?;
            }
            print(&realm_json(realm_of(&state(c).await, &r.id)?));
        }
    }
    Ok(())
}

fn remote_error(url: &str, s: tonic::Status) -> anyhow::Error {
    match s.code() {
        tonic::Code::Unauthenticated => anyhow::anyhow!(
            "{url} refused the keys: {}; use the access key and secret of a system user of that zone (user create --system) or its zone system key",
            s.message()
        ),
        _ => anyhow::anyhow!("{url}: {}", s.message()),
    }
}

/// `meridian zonegroup ...`.
pub async fn zonegroup(ctx: &Ctx, cmd: ZonegroupCmd) -> anyhow::Result<()> {
    let c = &ctx.connect().await?;
    let show = |name: String| async move {
        let ms = state(c).await;
        zonegroup_of(&ms, &name).map(|g| print(&zonegroup_json(g)))
    };
    match cmd {
        ZonegroupCmd::Create {
            zonegroup,
            realm,
            endpoints: e,
            master,
            default,
        } => {
            run(
                c,
                M::ZonegroupCreate(ZonegroupCreate {
                    realm,
                    zonegroup: Some(Zonegroup {
                        id: random_uuid(),
                        name: zonegroup.clone(),
                        api_name: zonegroup.clone(),
                        endpoints: endpoints(&e),
                        is_master: master,
                        ..Default::default()
                    }),
                    default,
                }),
            )
            .await?;
            show(zonegroup).await?;
        }
        ZonegroupCmd::Get { zonegroup } => show(zonegroup).await?,
        ZonegroupCmd::List => {
            let ms = state(c).await;
            print(
                &json!({"default_info": ms.default_zonegroup, "zonegroups": ms.zonegroups.iter().map(|g| g.name.clone()).collect::<Vec<_>>()}),
            );
        }
        ZonegroupCmd::Modify {
            zonegroup,
            endpoints: e,
            master_zone,
            master,
            default,
        } => {
            let name = zonegroup_of(&state(c).await, &zonegroup)?.name.clone();
            run(
                c,
                M::ZonegroupModify(ZonegroupModify {
                    name: name.clone(),
                    set_endpoints: e.is_some(),
                    endpoints: endpoints(&e),
                    master_zone: master_zone.unwrap_or_default(),
                    is_master: master,
                    default,
                }),
            )
            .await?;
            show(name).await?;
        }
        ZonegroupCmd::Add { zonegroup, zone } => {
            run(
                c,
                M::ZonegroupAdd(ZonegroupMembership {
                    zonegroup: zonegroup.clone(),
                    zone,
                }),
            )
            .await?;
            show(zonegroup).await?;
        }
        ZonegroupCmd::Remove { zonegroup, zone } => {
            run(
                c,
                M::ZonegroupRemove(ZonegroupMembership {
                    zonegroup: zonegroup.clone(),
                    zone,
                }),
            )
            .await?;
            show(zonegroup).await?;
        }
        ZonegroupCmd::Rm { zonegroup } => {
            run(c, M::ZonegroupRm(NameRef { name: zonegroup })).await?;
        }
        ZonegroupCmd::Default { zonegroup } => {
            run(c, M::ZonegroupDefault(NameRef { name: zonegroup })).await?;
        }
    }
    Ok(())
}

/// `meridian zone ...`.
pub async fn zone(ctx: &Ctx, cmd: ZoneCmd) -> anyhow::Result<()> {
    let c = &ctx.connect().await?;
    let show = |name: String| async move {
        let ms = state(c).await;
        let z = if name.is_empty() {
            ms.zones
                .iter()
                .find(|z| z.id == ms.default_zone)
                .or_else(|| ms.zones.first())
        } else {
            ms.zones.iter().find(|z| z.name == name || z.id == name)
        };
        match z {
            Some(z) => {
                print(&zone_json(z));
                Ok(())
            }
            None => Err(anyhow::anyhow!(
                "zone '{name}' is not a zone of this cluster (see `zone list`)"
            )),
        }
    };
    match cmd {
        ZoneCmd::Create {
            zonegroup,
            zone,
            endpoints: e,
            access_key,
            secret,
            master,
            default,
            read_only,
        } => {
            run(
                c,
                M::ZoneCreate(ZoneCreate {
                    zonegroup,
                    zone: Some(Zone {
                        id: random_uuid(),
                        name: zone.clone(),
                        endpoints: endpoints(&e),
                        read_only: read_only.unwrap_or(false),
                        log_meta: false,
                        log_data: true,
                        system_key: system_key(&access_key, &secret)?,
                        sync_from_all: true,
                        ..Default::default()
                    }),
                    master,
                    default,
                }),
            )
            .await?;
            show(zone).await?;
        }
        ZoneCmd::Get { zone } => show(zone).await?,
        ZoneCmd::List => {
            let ms = state(c).await;
            print(
                &json!({"default_info": ms.default_zone, "zones": ms.zones.iter().map(|z| z.name.clone()).collect::<Vec<_>>()}),
            );
        }
        ZoneCmd::Modify {
            zone,
            zonegroup,
            endpoints: e,
            master,
            read_only,
            access_key,
            secret,
            default,
            yes: _,
        } => {
            let msg = run(
                c,
                M::ZoneModify(ZoneModify {
                    name: zone.clone(),
                    zonegroup,
                    set_endpoints: e.is_some(),
                    endpoints: endpoints(&e),
                    master,
                    read_only,
                    system_key: system_key(&access_key, &secret)?,
                    default,
                }),
            )
            .await?;
            let ms = state(c).await;
            if ms.zones.iter().any(|z| z.name == zone) {
                show(zone).await?;
            } else {
                eprintln!("{msg} (a zone of another cluster: its zonegroup entry was changed)");
            }
        }
        ZoneCmd::Rm { zone } => {
            run(c, M::ZoneRm(NameRef { name: zone })).await?;
        }
        ZoneCmd::Default { zone } => {
            run(c, M::ZoneDefault(NameRef { name: zone })).await?;
        }
        ZoneCmd::Failover(args) => super::failover::run(ctx, args).await?,
    }
    Ok(())
}

/// `meridian period ...`.
pub async fn period(ctx: &Ctx, cmd: PeriodCmd) -> anyhow::Result<()> {
    let c = &ctx.connect().await?;
    match cmd {
        PeriodCmd::Update { realm, commit } => {
            run(
                c,
                M::PeriodUpdate(PeriodUpdate {
                    realm: realm.clone(),
                }),
            )
            .await?;
            if commit {
                print(&period_json(&commit_staging(c, &realm).await?));
            } else {
                let ms = state(c).await;
                let r = realm_of(&ms, &realm)?;
                let staging = ms
                    .staging
                    .iter()
                    .find(|p| p.realm_id == r.id)
                    .context("no staging period was built")?;
                print(&period_json(staging));
            }
        }
        PeriodCmd::Commit { realm } => print(&period_json(&commit_staging(c, &realm).await?)),
        PeriodCmd::Get { realm, period_id } => {
            let ms = state(c).await;
            let r = realm_of(&ms, &realm)?;
            let id = if period_id.is_empty() {
                r.current_period.clone()
            } else {
                period_id
            };
            let p = ms
                .periods
                .iter()
                .chain(ms.staging.iter())
                .find(|p| p.id == id)
                .with_context(|| format!("period {id} is not known here (see `period list`)"))?;
            print(&period_json(p));
        }
        PeriodCmd::GetCurrent { realm } => {
            let ms = state(c).await;
            print(&json!({"current_period": realm_of(&ms, &realm)?.current_period}));
        }
        PeriodCmd::List => {
            let ms = state(c).await;
            print(&json!({"periods": ms.periods.iter().map(|p| p.id.clone()).collect::<Vec<_>>()}));
        }
        PeriodCmd::Pull { remote, realm } => {
            let key = SystemKey {
                access_key: remote.access_key.clone(),
                secret_key: remote.secret.clone(),
            };
            let ms = state(c).await;
            let local = realm_of(&ms, &realm).ok().cloned();
            let (r, p) = match &local {
                Some(r) => {
                    let req = GetPeriodRequest {
                        auth: None,
                        realm_id: r.id.clone(),
                        period_id: String::new(),
                    };
                    let p = peer::on_any(std::slice::from_ref(&remote.url), |mut z| {
                        let req = peer::sign(req.clone(), &key);
                        async move { z.get_period(req).await }
                    })
                    .await
                    .map_err(|s| remote_error(&remote.url, s))?;
                    (r.clone(), p)
                }
                None => {
                    let req = PullRealmRequest { auth: None, realm };
                    let reply = peer::on_any(std::slice::from_ref(&remote.url), |mut z| {
                        let req = peer::sign(req.clone(), &key);
                        async move { z.pull_realm(req).await }
                    })
                    .await
                    .map_err(|s| remote_error(&remote.url, s))?;
                    (
                        reply.realm.context("no realm sent")?,
                        reply.period.context("no period sent")?,
                    )
                }
            };
            let msg = run(
                c,
                M::PeriodInstall(PeriodInstall {
                    realm: Some(r),
                    period: Some(p.clone()),
                }),
            )
            .await?;
            eprintln!("{msg}");
            print(&period_json(&p));
        }
    }
    Ok(())
}

/// Commits the realm's staging period: here if this cluster holds the master
/// zone (then pushes it to the other zones), else on the master zone's
/// cluster (forwarded, signed with this cluster's zone system key), then
/// installs the result here.
pub(crate) async fn commit_staging(c: &Cluster, realm: &str) -> anyhow::Result<Period> {
    let ms = state(c).await;
    let r = realm_of(&ms, realm)?.clone();
    let staging = ms
        .staging
        .iter()
        .find(|p| p.realm_id == r.id)
        .cloned()
        .with_context(|| {
            format!(
                "realm {} has no staging period: run `period update`",
                r.name
            )
        })?;
    let local_master = ms.zones.iter().any(|z| z.id == staging.master_zone);
    let key = ms
        .zones
        .iter()
        .filter(|z| z.realm_id == r.id)
        .find_map(|z| z.system_key.clone());
    let period = if local_master || staging.master_zone.is_empty() {
        run(
            c,
            M::PeriodCommit(PeriodCommit {
                realm: r.id.clone(),
                new_period_id: random_uuid(),
                commit_token: random_uuid(),
                now_unix_ms: meridian_common::now_unix_ms(),
            }),
        )
        .await?;
        let ms = state(c).await;
        let r = realm_of(&ms, &r.id)?.clone();
        let p = meridian_mon::multisite::current_period(&ms, &r)
            .cloned()
            .context("no current period after the commit")?;
        let local_ids: Vec<&str> = ms.zones.iter().map(|z| z.id.as_str()).collect();
        let peers: Vec<(String, Vec<String>)> = p
            .zonegroups
            .iter()
            .flat_map(|g| g.zones.iter())
            .filter(|z| !local_ids.contains(&z.id.as_str()))
            .map(|z| (z.name.clone(), z.endpoints.clone()))
            .collect();
        if !peers.is_empty() {
            match &key {
                Some(k) => {
                    for line in
                        meridian_gateway::zone_service::push_to_peers(&peers, k, &r, &p).await
                    {
                        eprintln!("{line}");
                    }
                }
                None => eprintln!(
                    "no zone of this cluster has a system key: the other zones will not be told (zone modify --access-key --secret)"
                ),
            }
        }
        p
    } else {
        let master = meridian_mon::multisite::zone(&ms, &staging.master_zone)
            .map(|z| (z.name.clone(), z.endpoints.clone()))
            .unwrap_or_default();
        let mut targets = master.1.clone();
        if targets.is_empty()
            && let Some(g) = staging
                .zonegroups
                .iter()
                .find(|g| g.id == staging.master_zonegroup)
        {
            targets = g.endpoints.clone();
        }
        let key = key.with_context(|| {
            format!(
                "this cluster does not hold the metadata master zone ({}) and none of its zones has a system key to forward the commit with (zone modify --access-key --secret); nothing was committed",
                master.0
            )
        })?;
        let req = CommitPeriodRequest {
            auth: None,
            staging: Some(staging),
        };
        let reply = peer::on_any(&targets, |mut z| {
            let req = peer::sign(req.clone(), &key);
            async move { z.commit_period(req).await }
        })
        .await
        .map_err(|s| {
            anyhow::anyhow!(
                "this cluster does not hold the metadata master zone ({}); forwarding the commit to {} failed: {}; nothing was committed",
                master.0,
                targets.join(", "),
                s.message()
            )
        })?;
        let p = reply.period.context("the master zone sent no period")?;
        run(
            c,
            M::PeriodInstall(PeriodInstall {
                realm: reply.realm,
                period: Some(p.clone()),
            }),
        )
        .await?;
        p
    };
    Ok(period)
}
