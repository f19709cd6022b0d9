//! The multi-site part of the monitors' state machine: realms, zonegroups,
//! zones and periods with Ceph RGW's semantics. Pure, like the rest of
//! `state`: every id comes with the command, so every monitor and every
//! replay computes the same state.
//!
//! Periods: `period update` builds a realm's staging period from its current
//! configuration; committing it (only on the cluster that holds the master
//! zone, and only if it was built on the current period) gives the same
//! period id at epoch + 1 when the master zone is unchanged, or a new period
//! (predecessor = the old one, realm epoch + 1) when it changed. A period
//! committed elsewhere is installed only if it is newer than the current one.

use crate::state::CommandError;
use meridian_proto::multisite::multisite_command::Cmd;
use meridian_proto::multisite::*;

/// The outcome of a command: a message, and whether the state changed.
pub type Outcome = Result<(String, bool), CommandError>;

fn invalid(m: impl Into<String>) -> CommandError {
    CommandError::Invalid(m.into())
}

fn not_found(m: impl Into<String>) -> CommandError {
    CommandError::NotFound(m.into())
}

fn exists(m: impl Into<String>) -> CommandError {
    CommandError::Exists(m.into())
}

/// Realm, zonegroup and zone names: letters, digits, `.`, `_`, `-`.
pub fn validate_name(kind: &str, name: &str) -> Result<(), CommandError> {
    if name.is_empty() || name.len() > 64 {
        return Err(invalid(format!("{kind} names are 1 to 64 characters")));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(invalid(format!(
            "{kind} name {name:?}: use letters, digits, '.', '_' and '-'"
        )));
    }
    Ok(())
}

/// The realm a command names ("" = the default realm, or the only one).
pub fn realm<'a>(ms: &'a MultisiteState, name: &str) -> Result<&'a Realm, CommandError> {
    if name.is_empty() {
        if let Some(r) = ms.realms.iter().find(|r| r.id == ms.default_realm) {
            return Ok(r);
        }
        return match ms.realms.as_slice() {
            [only] => Ok(only),
            [] => Err(not_found(
                "no realm exists: create one with `realm create --rgw-realm=NAME` or `realm pull`",
            )),
            _ => Err(invalid(
                "several realms exist and none is the default: pass --rgw-realm or run `realm default`",
            )),
        };
    }
    ms.realms
        .iter()
        .find(|r| r.name == name || r.id == name)
        .ok_or_else(|| not_found(format!("realm '{name}' does not exist (see `realm list`)")))
}

/// The zonegroup a command names ("" = the default one, or the only one).
pub fn zonegroup<'a>(ms: &'a MultisiteState, name: &str) -> Result<&'a Zonegroup, CommandError> {
    if name.is_empty() {
        if let Some(z) = ms.zonegroups.iter().find(|z| z.id == ms.default_zonegroup) {
            return Ok(z);
        }
        return match ms.zonegroups.as_slice() {
            [only] => Ok(only),
            [] => Err(not_found(
                "no zonegroup exists: create one with `zonegroup create --rgw-zonegroup=NAME`",
            )),
            _ => Err(invalid(
                "several zonegroups exist and none is the default: pass --rgw-zonegroup",
            )),
        };
    }
    ms.zonegroups
        .iter()
        .find(|z| z.name == name || z.id == name)
        .ok_or_else(|| {
            not_found(format!(
                "zonegroup '{name}' does not exist (see `zonegroup list`)"
            ))
        })
}

fn zonegroup_idx(ms: &MultisiteState, name: &str) -> Result<usize, CommandError> {
    let id = zonegroup(ms, name)?.id.clone();
    Ok(ms
        .zonegroups
        .iter()
        .position(|z| z.id == id)
        .expect("found above"))
}

/// The current period of a realm.
pub fn current_period<'a>(ms: &'a MultisiteState, realm: &Realm) -> Option<&'a Period> {
    ms.periods.iter().find(|p| p.id == realm.current_period)
}

/// The zone named `name`: a local one, else one known from a zonegroup.
pub fn zone<'a>(ms: &'a MultisiteState, name: &str) -> Option<&'a Zone> {
    ms.zones
        .iter()
        .find(|z| z.name == name || z.id == name)
        .or_else(|| {
            ms.zonegroups
                .iter()
                .flat_map(|g| g.zones.iter())
                .find(|z| z.name == name || z.id == name)
        })
}

/// Applies one multi-site command.
pub fn apply(ms: &mut MultisiteState, cmd: &MultisiteCommand, now_ms: u64) -> Outcome {
    let Some(cmd) = &cmd.cmd else {
        return Err(invalid("empty multisite command"));
    };
    match cmd {
        Cmd::RealmCreate(c) => realm_create(ms, c, now_ms),
        Cmd::RealmDefault(n) => {
            let id = realm(ms, &n.name)?.id.clone();
            let changed = ms.default_realm != id;
            ms.default_realm = id;
            Ok((format!("realm {} is the default", n.name), changed))
        }
        Cmd::RealmRename(r) => {
            validate_name("realm", &r.new_name)?;
            if ms.realms.iter().any(|x| x.name == r.new_name) {
                return Err(exists(format!("a realm named '{}' exists", r.new_name)));
            }
            let id = realm(ms, &r.name)?.id.clone();
            let re = ms.realms.iter_mut().find(|x| x.id == id).expect("found");
            re.name = r.new_name.clone();
            Ok((format!("renamed realm {} to {}", r.name, r.new_name), true))
        }
        Cmd::RealmRm(n) => {
            let id = realm(ms, &n.name)?.id.clone();
            if let Some(g) = ms.zonegroups.iter().find(|g| g.realm_id == id) {
                return Err(invalid(format!(
                    "realm {} still has zonegroup {}: remove its zonegroups first",
                    n.name, g.name
                )));
            }
            ms.realms.retain(|r| r.id != id);
            ms.periods.retain(|p| p.realm_id != id);
            ms.staging.retain(|p| p.realm_id != id);
            if ms.default_realm == id {
                ms.default_realm.clear();
            }
            Ok((format!("removed realm {}", n.name), true))
        }
        Cmd::ZonegroupCreate(c) => zonegroup_create(ms, c),
        Cmd::ZonegroupModify(m) => zonegroup_modify(ms, m),
        Cmd::ZonegroupAdd(m) => {
            let zi = zonegroup_idx(ms, &m.zonegroup)?;
            let z = ms
                .zones
                .iter()
                .find(|z| z.name == m.zone)
                .cloned()
                .ok_or_else(|| {
                    not_found(format!("zone '{}' is not a zone of this cluster", m.zone))
                })?;
            if let Some(other) = ms
                .zonegroups
                .iter()
                .find(|g| g.zones.iter().any(|e| e.id == z.id) && g.id != ms.zonegroups[zi].id)
            {
                return Err(exists(format!(
                    "zone {} already belongs to zonegroup {}",
                    z.name, other.name
                )));
            }
            let g = &mut ms.zonegroups[zi];
            if g.zones.iter().any(|e| e.id == z.id) {
                return Ok((format!("zone {} is already in {}", z.name, g.name), false));
            }
            g.zones.push(z.clone());
            Ok((
                format!("added zone {} to zonegroup {}", z.name, g.name),
                true,
            ))
        }
        Cmd::ZonegroupRemove(m) => {
            let zi = zonegroup_idx(ms, &m.zonegroup)?;
            let g = &mut ms.zonegroups[zi];
            let Some(pos) = g
                .zones
                .iter()
                .position(|e| e.name == m.zone || e.id == m.zone)
            else {
                return Err(not_found(format!(
                    "zone '{}' is not in zonegroup {}",
                    m.zone, g.name
                )));
            };
            let id = g.zones.remove(pos).id;
            if g.master_zone == id {
                g.master_zone.clear();
            }
            Ok((
                format!("removed zone {} from zonegroup {}", m.zone, g.name),
                true,
            ))
        }
        Cmd::ZonegroupRm(n) => {
            let zi = zonegroup_idx(ms, &n.name)?;
            if let Some(z) = ms.zonegroups[zi].zones.first() {
                return Err(invalid(format!(
                    "zonegroup {} still has zone {}: remove its zones first",
                    n.name, z.name
                )));
            }
            let g = ms.zonegroups.remove(zi);
            if ms.default_zonegroup == g.id {
                ms.default_zonegroup.clear();
            }
            Ok((format!("removed zonegroup {}", g.name), true))
        }
        Cmd::ZonegroupDefault(n) => {
            let id = zonegroup(ms, &n.name)?.id.clone();
            let changed = ms.default_zonegroup != id;
            ms.default_zonegroup = id;
            Ok((format!("zonegroup {} is the default", n.name), changed))
        }
        Cmd::ZoneCreate(c) => zone_create(ms, c),
        Cmd::ZoneModify(m) => zone_modify(ms, m),
        Cmd::ZoneRm(n) => {
            let Some(z) = ms.zones.iter().find(|z| z.name == n.name).cloned() else {
                return Err(not_found(format!(
                    "zone '{}' is not a zone of this cluster (see `zone list`)",
                    n.name
                )));
            };
            if let Some(g) = ms.zonegroups.iter().find(|g| g.master_zone == z.id) {
                return Err(invalid(format!(
                    "zone {} is the master zone of zonegroup {}: make another zone the master first",
                    z.name, g.name
                )));
            }
            ms.zones.retain(|x| x.id != z.id);
            for g in &mut ms.zonegroups {
                g.zones.retain(|e| e.id != z.id);
            }
            if ms.default_zone == z.id {
                ms.default_zone.clear();
            }
            Ok((format!("removed zone {}", z.name), true))
        }
        Cmd::ZoneDefault(n) => {
            let Some(z) = ms.zones.iter().find(|z| z.name == n.name) else {
                return Err(not_found(format!(
                    "zone '{}' is not a zone of this cluster",
                    n.name
                )));
            };
            let id = z.id.clone();
            let changed = ms.default_zone != id;
            ms.default_zone = id;
            Ok((format!("zone {} is the default", n.name), changed))
        }
        Cmd::PeriodUpdate(u) => {
            let r = realm(ms, &u.realm)?.clone();
            let staging = build_staging(ms, &r)?;
            let msg = format!(
                "staging period of realm {} built on period {} epoch {}",
                r.name, staging.based_on_id, staging.based_on_epoch
            );
            ms.staging.retain(|p| p.realm_id != r.id);
            ms.staging.push(staging);
            Ok((msg, true))
        }
        Cmd::PeriodCommit(c) => {
            let r = realm(ms, &c.realm)?.clone();
            if let Some(done) = token_done(ms, &r, &c.commit_token) {
                return Ok((done, false));
            }
            let staging = ms
                .staging
                .iter()
                .find(|p| p.realm_id == r.id)
                .cloned()
                .ok_or_else(|| {
                    invalid(format!(
                        "realm {} has no staging period: run `period update`",
                        r.name
                    ))
                })?;
            commit(
                ms,
                &r,
                staging,
                &c.new_period_id,
                &c.commit_token,
                c.now_unix_ms.max(now_ms),
            )
        }
        Cmd::PeriodCommitRemote(c) => {
            let staging = c
                .staging
                .clone()
                .ok_or_else(|| invalid("no staging period sent"))?;
            let r = ms
                .realms
                .iter()
                .find(|r| r.id == staging.realm_id)
                .cloned()
                .ok_or_else(|| {
                    not_found(format!("realm {} is not known here", staging.realm_id))
                })?;
            if let Some(done) = token_done(ms, &r, &c.commit_token) {
                return Ok((done, false));
            }
            check_based_on_current(ms, &r, &staging)?;
            if !ms.zones.iter().any(|z| z.id == staging.master_zone) {
                return Err(invalid(format!(
                    "the forwarded period makes zone {} the master, which is not a zone of this cluster: commit it on that zone's cluster",
                    staging.master_zone
                )));
            }
            reflect(ms, &staging)?;
            let fresh = build_staging(ms, &r)?;
            commit(ms, &r, fresh, &c.new_period_id, &c.commit_token, now_ms)
        }
        Cmd::PeriodInstall(i) => install(ms, i),
        Cmd::ZonegroupSyncPolicy(c) => {
            let zi = zonegroup_idx(ms, &c.zonegroup)?;
            let g = &ms.zonegroups[zi];
            let policy = c.policy.clone().unwrap_or_default();
            validate_sync_policy(&policy, Some(&g.zones))?;
            let current = g.sync_policy.clone().unwrap_or_default();
            if c.expect.clone().unwrap_or_default() != current {
                return Err(exists(format!(
                    "the sync policy of zonegroup {} changed meanwhile: read it again and retry",
                    g.name
                )));
            }
            let name = g.name.clone();
            let changed = policy != current;
            ms.zonegroups[zi].sync_policy = Some(policy).filter(|p| !p.groups.is_empty());
            Ok((
                format!(
                    "updated the sync policy of zonegroup {name}: `period update --commit` applies it"
                ),
                changed,
            ))
        }
    }
}

/// Most sync groups in a policy, and pipes or flows in a group.
pub const MAX_SYNC_POLICY_ITEMS: usize = 64;

/// Checks a sync policy: ids, statuses, globs, and (for a zonegroup's)
/// that every zone it names is in `zones`.
pub fn validate_sync_policy(p: &SyncPolicy, zones: Option<&[Zone]>) -> Result<(), CommandError> {
    let id_ok = |kind: &str, id: &str| validate_name(kind, id);
    let zone_ok = |z: &str| -> Result<(), CommandError> {
        if z == "*" {
            return Ok(());
        }
        match zones {
            Some(zs) if !zs.iter().any(|x| x.name == z || x.id == z) => Err(not_found(format!(
                "zone '{z}' is not in the zonegroup (zone names, ids or '*')"
            ))),
            _ => Ok(()),
        }
    };
    let unique = |kind: &str, ids: Vec<&str>| -> Result<(), CommandError> {
        if ids.len() > MAX_SYNC_POLICY_ITEMS {
            return Err(invalid(format!("at most {MAX_SYNC_POLICY_ITEMS} {kind}s")));
        }
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            id_ok(kind, id)?;
            if !seen.insert(id) {
                return Err(exists(format!("{kind} '{id}' exists")));
            }
        }
        Ok(())
    };
    unique(
        "sync group",
        p.groups.iter().map(|g| g.id.as_str()).collect(),
    )?;
    for g in &p.groups {
        if !matches!(g.status.as_str(), "enabled" | "allowed" | "forbidden") {
            return Err(invalid(format!(
                "sync group {}: status '{}' is not enabled, allowed or forbidden",
                g.id, g.status
            )));
        }
        let flows = g
            .symmetrical
            .iter()
            .map(|f| f.id.as_str())
            .chain(g.directional.iter().map(|f| f.id.as_str()))
            .collect();
        unique("flow", flows)?;
        for f in &g.symmetrical {
            if f.zones.is_empty() {
                return Err(invalid(format!("symmetrical flow {} names no zones", f.id)));
            }
            f.zones.iter().try_for_each(|z| zone_ok(z))?;
        }
        for f in &g.directional {
            if f.source_zone.is_empty() || f.dest_zone.is_empty() {
                return Err(invalid(format!(
                    "directional flow {} needs --source-zone and --dest-zone",
                    f.id
                )));
            }
            zone_ok(&f.source_zone)?;
            zone_ok(&f.dest_zone)?;
        }
        unique("pipe", g.pipes.iter().map(|p| p.id.as_str()).collect())?;
        for pipe in &g.pipes {
            pipe.source_zones
                .iter()
                .chain(&pipe.dest_zones)
                .try_for_each(|z| zone_ok(z))?;
            let same = |b: &str| b.is_empty() || b == "*";
            if !same(&pipe.dest_bucket) && pipe.dest_bucket != pipe.source_bucket {
                return Err(invalid(format!(
                    "pipe {}: objects sync into the bucket of the same name; --dest-bucket must be '*' or equal --source-bucket",
                    pipe.id
                )));
            }
        }
    }
    Ok(())
}

fn realm_create(ms: &mut MultisiteState, c: &RealmCreate, now_ms: u64) -> Outcome {
    validate_name("realm", &c.name)?;
    if c.id.is_empty() || c.period_id.is_empty() {
        return Err(invalid("realm create needs generated ids"));
    }
    if ms.realms.iter().any(|r| r.name == c.name) {
        return Err(exists(format!("realm '{}' already exists", c.name)));
    }
    ms.realms.push(Realm {
        id: c.id.clone(),
        name: c.name.clone(),
        current_period: c.period_id.clone(),
        epoch: 1,
    });
    ms.periods.push(Period {
        id: c.period_id.clone(),
        epoch: 1,
        realm_epoch: 1,
        realm_id: c.id.clone(),
        committed_unix_ms: now_ms,
        ..Default::default()
    });
    if c.default || ms.default_realm.is_empty() {
        ms.default_realm = c.id.clone();
    }
    Ok((format!("created realm {}", c.name), true))
}

fn zonegroup_create(ms: &mut MultisiteState, c: &ZonegroupCreate) -> Outcome {
    let mut g = c
        .zonegroup
        .clone()
        .ok_or_else(|| invalid("no zonegroup given"))?;
    validate_name("zonegroup", &g.name)?;
    if g.id.is_empty() {
        return Err(invalid("zonegroup create needs a generated id"));
    }
    if ms.zonegroups.iter().any(|x| x.name == g.name) {
        return Err(exists(format!("zonegroup '{}' already exists", g.name)));
    }
    g.realm_id = if c.realm.is_empty() && ms.realms.is_empty() {
        String::new()
    } else {
        realm(ms, &c.realm)?.id.clone()
    };
    if g.api_name.is_empty() {
        g.api_name = g.name.clone();
    }
    if g.placement_targets.is_empty() {
        g.placement_targets.push(PlacementTarget {
            name: "default-placement".into(),
            storage_classes: vec!["STANDARD".into()],
        });
        g.default_placement = "default-placement".into();
    }
    g.zones.clear();
    g.master_zone.clear();
    if g.is_master {
        for other in ms
            .zonegroups
            .iter_mut()
            .filter(|o| o.realm_id == g.realm_id)
        {
            other.is_master = false;
        }
    }
    if c.default || ms.default_zonegroup.is_empty() {
        ms.default_zonegroup = g.id.clone();
    }
    let name = g.name.clone();
    ms.zonegroups.push(g);
    Ok((format!("created zonegroup {name}"), true))
}

fn zonegroup_modify(ms: &mut MultisiteState, m: &ZonegroupModify) -> Outcome {
    let zi = zonegroup_idx(ms, &m.name)?;
    if !m.master_zone.is_empty() {
        let g = &ms.zonegroups[zi];
        let Some(z) = g
            .zones
            .iter()
            .find(|z| z.name == m.master_zone || z.id == m.master_zone)
        else {
            return Err(not_found(format!(
                "zone '{}' is not in zonegroup {}: add it first (zonegroup add / zone create)",
                m.master_zone, g.name
            )));
        };
        let id = z.id.clone();
        ms.zonegroups[zi].master_zone = id;
    }
    if m.set_endpoints {
        ms.zonegroups[zi].endpoints = m.endpoints.clone();
    }
    if let Some(master) = m.is_master {
        let realm_id = ms.zonegroups[zi].realm_id.clone();
        if master {
            for o in ms.zonegroups.iter_mut().filter(|o| o.realm_id == realm_id) {
                o.is_master = false;
            }
        }
        ms.zonegroups[zi].is_master = master;
    }
    if m.default {
        ms.default_zonegroup = ms.zonegroups[zi].id.clone();
    }
    Ok((
        format!("modified zonegroup {}", ms.zonegroups[zi].name),
        true,
    ))
}

fn zone_create(ms: &mut MultisiteState, c: &ZoneCreate) -> Outcome {
    let mut z = c.zone.clone().ok_or_else(|| invalid("no zone given"))?;
    validate_name("zone", &z.name)?;
    if z.id.is_empty() {
        return Err(invalid("zone create needs a generated id"));
    }
    let zi = zonegroup_idx(ms, &c.zonegroup)?;
    // A zone the period names but whose cluster is gone (this is a new,
    // empty cluster) is re-created: a new zone of the same name, with a new
    // id, so every peer syncs it from scratch (its logs start over), and
    // everything comes back to it by full sync.
    let mut replaces = None;
    if let Some(old) = zone(ms, &z.name) {
        let remote = !ms.zones.iter().any(|l| l.id == old.id);
        let g = &ms.zonegroups[zi];
        let here = g.zones.iter().any(|e| e.id == old.id);
        if !remote || !here {
            return Err(exists(format!(
                "zone '{}' already exists: zone names are unique in a realm",
                z.name
            )));
        }
        if g.master_zone == old.id {
            return Err(invalid(format!(
                "zone '{}' is the master zone of zonegroup {}: promote another zone first (zone failover, or the emergency runbook), then re-create it",
                z.name, g.name
            )));
        }
        replaces = Some(old.id.clone());
    }
    if let Some(old) = &replaces {
        ms.zonegroups[zi].zones.retain(|e| &e.id != old);
    }
    z.local = true;
    z.realm_id = ms.zonegroups[zi].realm_id.clone();
    if z.bucket_index_max_shards == 0 {
        z.bucket_index_max_shards = 11;
    }
    let g = &mut ms.zonegroups[zi];
    g.zones.push(z.clone());
    if c.master {
        g.master_zone = z.id.clone();
    }
    let gname = g.name.clone();
    if c.default || ms.default_zone.is_empty() {
        ms.default_zone = z.id.clone();
    }
    let name = z.name.clone();
    ms.zones.push(z);
    match replaces {
        Some(old) => Ok((
            format!(
                "re-created zone {name} in zonegroup {gname}, replacing its lost instance {old}: `period update --commit` makes the other zones sync it afresh"
            ),
            true,
        )),
        None => Ok((format!("created zone {name} in zonegroup {gname}"), true)),
    }
}

fn zone_modify(ms: &mut MultisiteState, m: &ZoneModify) -> Outcome {
    let Some(id) = zone(ms, &m.name).map(|z| z.id.clone()) else {
        return Err(not_found(format!(
            "zone '{}' does not exist (see `zone list`)",
            m.name
        )));
    };
    if !m.zonegroup.is_empty() {
        let g = zonegroup(ms, &m.zonegroup)?;
        if !g.zones.iter().any(|e| e.id == id) {
            return Err(not_found(format!(
                "zone {} is not in zonegroup {}",
                m.name, g.name
            )));
        }
    }
    let edit = |z: &mut Zone| {
        if m.set_endpoints {
            z.endpoints = m.endpoints.clone();
        }
        if let Some(ro) = m.read_only {
            z.read_only = ro;
        }
        if let Some(k) = &m.system_key {
            z.system_key = Some(k.clone());
        }
    };
    for z in ms.zones.iter_mut().filter(|z| z.id == id) {
        edit(z);
    }
    for g in &mut ms.zonegroups {
        let holds = g.zones.iter().any(|e| e.id == id);
        for e in g.zones.iter_mut().filter(|e| e.id == id) {
            edit(e);
        }
        match m.master {
            Some(true) if holds => g.master_zone = id.clone(),
            Some(false) if g.master_zone == id => g.master_zone.clear(),
            _ => {}
        }
    }
    if m.default && ms.zones.iter().any(|z| z.id == id) {
        ms.default_zone = id;
    }
    Ok((format!("modified zone {}", m.name), true))
}

/// The staging period of `r` from the current configuration: every zonegroup
/// of the realm, with its zones as this cluster knows them.
fn build_staging(ms: &MultisiteState, r: &Realm) -> Result<Period, CommandError> {
    let cur = current_period(ms, r)
        .ok_or_else(|| invalid(format!("realm {} has no current period", r.name)))?;
    let mut zonegroups: Vec<Zonegroup> = ms
        .zonegroups
        .iter()
        .filter(|g| g.realm_id == r.id)
        .cloned()
        .collect();
    for g in &mut zonegroups {
        for e in &mut g.zones {
            if let Some(local) = ms.zones.iter().find(|z| z.id == e.id) {
                *e = local.clone();
            }
            // Secrets stay on their cluster.
            e.system_key = None;
            e.local = false;
        }
    }
    let masters: Vec<&Zonegroup> = zonegroups.iter().filter(|g| g.is_master).collect();
    if masters.len() > 1 {
        return Err(invalid(format!(
            "realm {} has {} master zonegroups; keep one (zonegroup modify --master=false)",
            r.name,
            masters.len()
        )));
    }
    let (mzg, mz) = masters
        .first()
        .map(|g| (g.id.clone(), g.master_zone.clone()))
        .unwrap_or_default();
    Ok(Period {
        id: format!("{}:staging", r.id),
        epoch: cur.epoch,
        predecessor: cur.id.clone(),
        realm_epoch: cur.realm_epoch,
        realm_id: r.id.clone(),
        master_zonegroup: mzg,
        master_zone: mz,
        zonegroups,
        based_on_id: cur.id.clone(),
        based_on_epoch: cur.epoch,
        commit_token: String::new(),
        committed_unix_ms: 0,
    })
}

fn token_done(ms: &MultisiteState, r: &Realm, token: &str) -> Option<String> {
    let cur = current_period(ms, r)?;
    (!token.is_empty() && cur.commit_token == token)
        .then(|| format!("already committed: period {} epoch {}", cur.id, cur.epoch))
}

fn check_based_on_current(
    ms: &MultisiteState,
    r: &Realm,
    staging: &Period,
) -> Result<(), CommandError> {
    let cur = current_period(ms, r)
        .ok_or_else(|| invalid(format!("realm {} has no current period", r.name)))?;
    if staging.based_on_id != cur.id || staging.based_on_epoch != cur.epoch {
        return Err(invalid(format!(
            "the staging period was built on period {} epoch {}, but the current period is {} epoch {}: run `period pull`, then `period update --commit` again",
            staging.based_on_id, staging.based_on_epoch, cur.id, cur.epoch
        )));
    }
    Ok(())
}

fn commit(
    ms: &mut MultisiteState,
    r: &Realm,
    staging: Period,
    new_period_id: &str,
    token: &str,
    now_ms: u64,
) -> Outcome {
    if let Some(done) = token_done(ms, r, token) {
        return Ok((done, false));
    }
    check_based_on_current(ms, r, &staging)?;
    if staging.master_zonegroup.is_empty() {
        return Err(invalid(format!(
            "realm {} has no master zonegroup: `zonegroup create --master` or `zonegroup modify --master`",
            r.name
        )));
    }
    if staging.master_zone.is_empty() {
        return Err(invalid(format!(
            "the master zonegroup of realm {} has no master zone: `zone create --master` or `zonegroup modify --master-zone=ZONE`",
            r.name
        )));
    }
    if !ms.zones.iter().any(|z| z.id == staging.master_zone) {
        let name = zone(ms, &staging.master_zone)
            .map(|z| z.name.clone())
            .unwrap_or_else(|| staging.master_zone.clone());
        return Err(invalid(format!(
            "this cluster does not hold the metadata master zone ({name}): only its cluster can commit; the CLI forwards the commit to that zone's endpoints"
        )));
    }
    let cur = current_period(ms, r).cloned().expect("checked above");
    let mut p = staging;
    if p.master_zone == cur.master_zone {
        p.id = cur.id.clone();
        p.epoch = cur.epoch + 1;
        p.realm_epoch = cur.realm_epoch;
        p.predecessor = cur.predecessor.clone();
    } else {
        if new_period_id.is_empty() {
            return Err(invalid("a new period needs a generated id"));
        }
        p.id = new_period_id.to_string();
        p.epoch = 1;
        p.realm_epoch = cur.realm_epoch + 1;
        p.predecessor = cur.id.clone();
    }
    p.based_on_id.clear();
    p.based_on_epoch = 0;
    p.commit_token = token.to_string();
    p.committed_unix_ms = now_ms;
    let msg = format!(
        "committed period {} epoch {} (realm epoch {})",
        p.id, p.epoch, p.realm_epoch
    );
    ms.staging.retain(|s| s.realm_id != r.id);
    store_current(ms, &r.id, p);
    Ok((msg, true))
}

/// Makes `p` the realm's current period (history keeps each period's latest epoch).
fn store_current(ms: &mut MultisiteState, realm_id: &str, p: Period) {
    let id = p.id.clone();
    ms.periods.retain(|x| x.id != id);
    ms.periods.push(p);
    if let Some(r) = ms.realms.iter_mut().find(|r| r.id == realm_id)
        && r.current_period != id
    {
        r.current_period = id;
        r.epoch += 1;
    }
}

/// Applies a period map to the local configuration: zonegroups and zone
/// entries as the period says, local zones' own settings kept.
fn reflect(ms: &mut MultisiteState, p: &Period) -> Result<(), CommandError> {
    for pg in &p.zonegroups {
        if let Some(other) = ms
            .zonegroups
            .iter()
            .find(|g| g.name == pg.name && g.id != pg.id)
        {
            return Err(exists(format!(
                "this cluster has another zonegroup named {} (id {}); remove it before joining realm {}",
                other.name, other.id, p.realm_id
            )));
        }
        let mut g = pg.clone();
        for e in &mut g.zones {
            if let Some(local) = ms.zones.iter().find(|z| z.id == e.id) {
                *e = local.clone();
            } else {
                e.local = false;
                e.system_key = None;
            }
        }
        match ms.zonegroups.iter_mut().find(|x| x.id == g.id) {
            Some(x) => *x = g,
            None => ms.zonegroups.push(g),
        }
    }
    for g in ms
        .zonegroups
        .iter_mut()
        .filter(|g| g.realm_id == p.realm_id)
    {
        g.is_master = g.id == p.master_zonegroup;
    }
    if ms.default_zonegroup.is_empty()
        && let Some(g) = ms.zonegroups.iter().find(|g| g.id == p.master_zonegroup)
    {
        ms.default_zonegroup = g.id.clone();
    }
    Ok(())
}

fn install(ms: &mut MultisiteState, i: &PeriodInstall) -> Outcome {
    let p = i.period.clone().ok_or_else(|| invalid("no period given"))?;
    let incoming = i.realm.clone().ok_or_else(|| invalid("no realm given"))?;
    if p.realm_id != incoming.id || p.id.is_empty() {
        return Err(invalid(
            "the period does not belong to the realm sent with it",
        ));
    }
    let known = ms.realms.iter().find(|r| r.id == incoming.id).cloned();
    let r = match known {
        Some(r) => r,
        None => {
            if let Some(other) = ms.realms.iter().find(|r| r.name == incoming.name) {
                return Err(exists(format!(
                    "this cluster has another realm named {} (id {}); remove or rename it first",
                    other.name, other.id
                )));
            }
            let r = Realm {
                current_period: String::new(),
                epoch: incoming.epoch.max(1) - 1,
                ..incoming.clone()
            };
            ms.realms.push(r.clone());
            if ms.default_realm.is_empty() {
                ms.default_realm = r.id.clone();
            }
            r
        }
    };
    if let Some(cur) = current_period(ms, &r) {
        if p.id == cur.id && p.epoch <= cur.epoch {
            return Ok((
                format!("already at period {} epoch {}", cur.id, cur.epoch),
                false,
            ));
        }
        if p.realm_epoch < cur.realm_epoch {
            return Err(invalid(format!(
                "period {} (realm epoch {}) is older than the current period {} (realm epoch {})",
                p.id, p.realm_epoch, cur.id, cur.realm_epoch
            )));
        }
        if p.realm_epoch == cur.realm_epoch && p.id != cur.id {
            return Err(invalid(format!(
                "period {} conflicts with the current period {} (both realm epoch {}): two masters committed; resolve by committing a new period on the zone that should be master",
                p.id, cur.id, p.realm_epoch
            )));
        }
    }
    reflect(ms, &p)?;
    let msg = format!("installed period {} epoch {}", p.id, p.epoch);
    let realm_id = r.id.clone();
    ms.staging.retain(|s| s.realm_id != realm_id);
    store_current(ms, &realm_id, p);
    Ok((msg, true))
}

/// `map` as the monitors serve it: zone system keys keep their access key
/// (which names the key) but not their secret, which only
/// `GetZoneSecrets` hands out.
pub fn without_secrets(map: &meridian_proto::mon::ClusterMap) -> meridian_proto::mon::ClusterMap {
    let mut m = map.clone();
    if let Some(ms) = m.multisite.as_mut() {
        for z in ms.zone_entries_mut() {
            if let Some(k) = z.system_key.as_mut() {
                k.secret_key.clear();
            }
        }
    }
    m
}

/// The system keys of this cluster's zones, secrets included.
pub fn zone_secrets(map: &meridian_proto::mon::ClusterMap) -> Vec<meridian_proto::mon::ZoneSecret> {
    map.multisite
        .iter()
        .flat_map(|ms| ms.zones.iter())
        .filter_map(|z| {
            let key = z.system_key.clone().filter(|k| !k.secret_key.is_empty())?;
            Some(meridian_proto::mon::ZoneSecret {
                zone_id: z.id.clone(),
                key: Some(key),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(c: Cmd) -> MultisiteCommand {
        MultisiteCommand { cmd: Some(c) }
    }

    fn run(ms: &mut MultisiteState, c: Cmd) -> Outcome {
        apply(ms, &cmd(c), 1_000)
    }

    /// Realm production, master zonegroup us, master zone us-east.
    fn master_site() -> MultisiteState {
        let mut ms = MultisiteState::default();
        run(
            &mut ms,
            Cmd::RealmCreate(RealmCreate {
                id: "realm-1".into(),
                name: "production".into(),
                period_id: "p0".into(),
                default: true,
            }),
        )
        .unwrap();
        run(
            &mut ms,
            Cmd::ZonegroupCreate(ZonegroupCreate {
                realm: String::new(),
                zonegroup: Some(Zonegroup {
                    id: "zg-1".into(),
                    name: "us".into(),
                    endpoints: vec!["http://east".into()],
                    is_master: true,
                    ..Default::default()
                }),
                default: true,
            }),
        )
        .unwrap();
        run(
            &mut ms,
            Cmd::ZoneCreate(ZoneCreate {
                zonegroup: "us".into(),
                zone: Some(Zone {
                    id: "z-east".into(),
                    name: "us-east".into(),
                    endpoints: vec!["http://east".into()],
                    system_key: Some(SystemKey {
                        access_key: "AK".into(),
                        secret_key: "SK".into(),
                    }),
                    ..Default::default()
                }),
                master: true,
                default: true,
            }),
        )
        .unwrap();
        ms
    }

    fn update_commit(ms: &mut MultisiteState, new_id: &str, token: &str) -> Outcome {
        run(ms, Cmd::PeriodUpdate(PeriodUpdate::default()))?;
        run(
            ms,
            Cmd::PeriodCommit(PeriodCommit {
                realm: String::new(),
                new_period_id: new_id.into(),
                commit_token: token.into(),
                now_unix_ms: 5,
            }),
        )
    }

    fn current(ms: &MultisiteState) -> Period {
        let r = realm(ms, "").unwrap();
        current_period(ms, r).unwrap().clone()
    }

    #[test]
    fn a_sync_policy_is_checked_staged_and_committed_with_the_period() {
        let mut ms = master_site();
        let group = |status: &str, dest: &str| SyncPolicy {
            groups: vec![SyncGroup {
                id: "critical-data".into(),
                status: status.into(),
                directional: vec![DirectionalFlow {
                    id: "east-to-west".into(),
                    source_zone: "us-east".into(),
                    dest_zone: dest.into(),
                }],
                ..Default::default()
            }],
        };
        let set = |ms: &mut MultisiteState, p: SyncPolicy, expect: SyncPolicy| {
            run(
                ms,
                Cmd::ZonegroupSyncPolicy(ZonegroupSyncPolicy {
                    zonegroup: "us".into(),
                    policy: Some(p),
                    expect: Some(expect),
                }),
            )
        };
        let err = set(&mut ms, group("enabled", "nowhere"), SyncPolicy::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("'nowhere' is not in the zonegroup"),
            "{err}"
        );
        let err = set(&mut ms, group("on", "us-east"), SyncPolicy::default()).unwrap_err();
        assert!(err.to_string().contains("status 'on'"), "{err}");
        set(&mut ms, group("enabled", "*"), SyncPolicy::default()).unwrap();
        // A second writer that read the empty policy is refused.
        let err = set(&mut ms, group("allowed", "*"), SyncPolicy::default()).unwrap_err();
        assert!(err.to_string().contains("changed meanwhile"), "{err}");
        let policy = |ms: &MultisiteState| {
            current(ms)
                .zonegroups
                .first()
                .and_then(|g| g.sync_policy.clone())
        };
        assert_eq!(policy(&ms), None, "staged only");
        update_commit(&mut ms, "p1", "t1").unwrap();
        assert_eq!(policy(&ms), Some(group("enabled", "*")));
        // Emptied: no policy at all (everything syncs again).
        set(&mut ms, SyncPolicy::default(), group("enabled", "*")).unwrap();
        update_commit(&mut ms, "unused", "t2").unwrap();
        assert_eq!(policy(&ms), None);
    }

    #[test]
    fn first_commit_makes_a_new_period_then_epochs_advance() {
        let mut ms = master_site();
        assert_eq!(current(&ms).id, "p0");
        update_commit(&mut ms, "p1", "t1").unwrap();
        let p = current(&ms);
        assert_eq!((p.id.as_str(), p.epoch, p.realm_epoch), ("p1", 1, 2));
        assert_eq!(p.predecessor, "p0");
        assert_eq!(p.master_zone, "z-east");
        assert!(
            p.zonegroups[0].zones[0].system_key.is_none(),
            "secrets stay local"
        );
        assert_eq!(realm(&ms, "").unwrap().epoch, 2);
        // Same master: same id, epoch + 1, realm epoch unchanged.
        update_commit(&mut ms, "unused", "t2").unwrap();
        let p = current(&ms);
        assert_eq!((p.id.as_str(), p.epoch, p.realm_epoch), ("p1", 2, 2));
        assert_eq!(p.predecessor, "p0");
    }

    #[test]
    fn a_retried_commit_applies_once() {
        let mut ms = master_site();
        update_commit(&mut ms, "p1", "t1").unwrap();
        let (_, changed) = run(
            &mut ms,
            Cmd::PeriodCommit(PeriodCommit {
                realm: String::new(),
                new_period_id: "p9".into(),
                commit_token: "t1".into(),
                now_unix_ms: 9,
            }),
        )
        .unwrap();
        assert!(!changed);
        assert_eq!((current(&ms).id.as_str(), current(&ms).epoch), ("p1", 1));
    }

    #[test]
    fn a_stale_staging_period_is_refused_and_changes_nothing() {
        let mut ms = master_site();
        update_commit(&mut ms, "p1", "t1").unwrap();
        run(&mut ms, Cmd::PeriodUpdate(PeriodUpdate::default())).unwrap();
        // Another commit lands first (e.g. installed from elsewhere).
        let mut newer = current(&ms);
        newer.epoch = 7;
        let realm_msg = realm(&ms, "").unwrap().clone();
        run(
            &mut ms,
            Cmd::PeriodInstall(PeriodInstall {
                realm: Some(realm_msg),
                period: Some(newer),
            }),
        )
        .unwrap();
        // The install dropped the old staging; build a stale one by hand.
        let mut stale = build_staging(&ms, realm(&ms, "").unwrap()).unwrap();
        stale.based_on_epoch = 1;
        ms.staging.push(stale);
        let before = ms.clone();
        let e = run(
            &mut ms,
            Cmd::PeriodCommit(PeriodCommit {
                realm: String::new(),
                new_period_id: "px".into(),
                commit_token: "t3".into(),
                now_unix_ms: 5,
            }),
        )
        .unwrap_err();
        assert!(e.to_string().contains("period pull"), "{e}");
        assert_eq!(ms, before);
    }

    #[test]
    fn commit_needs_the_master_zone_on_this_cluster() {
        let mut ms = master_site();
        update_commit(&mut ms, "p1", "t1").unwrap();
        // A secondary site: installs the period, adds its zone, cannot commit itself.
        let mut sec = MultisiteState::default();
        run(
            &mut sec,
            Cmd::PeriodInstall(PeriodInstall {
                realm: Some(realm(&ms, "").unwrap().clone()),
                period: Some(current(&ms)),
            }),
        )
        .unwrap();
        assert_eq!(zonegroup(&sec, "us").unwrap().master_zone, "z-east");
        run(
            &mut sec,
            Cmd::ZoneCreate(ZoneCreate {
                zonegroup: "us".into(),
                zone: Some(Zone {
                    id: "z-west".into(),
                    name: "us-west".into(),
                    endpoints: vec!["http://west".into()],
                    ..Default::default()
                }),
                master: false,
                default: true,
            }),
        )
        .unwrap();
        run(&mut sec, Cmd::PeriodUpdate(PeriodUpdate::default())).unwrap();
        let staging = sec.staging[0].clone();
        let before = sec.clone();
        let e = run(
            &mut sec,
            Cmd::PeriodCommit(PeriodCommit {
                realm: String::new(),
                new_period_id: "p2".into(),
                commit_token: "t2".into(),
                now_unix_ms: 5,
            }),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("does not hold the metadata master zone"),
            "{e}"
        );
        assert_eq!(sec, before);
        // Forwarded to the master, it commits there: same period, epoch + 1, with us-west.
        run(
            &mut ms,
            Cmd::PeriodCommitRemote(PeriodCommitRemote {
                staging: Some(staging),
                new_period_id: "p2".into(),
                commit_token: "t2".into(),
            }),
        )
        .unwrap();
        let p = current(&ms);
        assert_eq!((p.id.as_str(), p.epoch), ("p1", 2));
        assert_eq!(p.zonegroups[0].zones.len(), 2);
        // Installed back on the secondary: both agree.
        run(
            &mut sec,
            Cmd::PeriodInstall(PeriodInstall {
                realm: Some(realm(&ms, "").unwrap().clone()),
                period: Some(p.clone()),
            }),
        )
        .unwrap();
        assert_eq!(current(&sec), p);
        // The secondary kept its own zone's secrets and locality.
        assert!(sec.zones.iter().any(|z| z.name == "us-west" && z.local));
    }

    #[test]
    fn a_new_master_zone_makes_a_new_period() {
        let mut ms = master_site();
        update_commit(&mut ms, "p1", "t1").unwrap();
        run(
            &mut ms,
            Cmd::ZoneCreate(ZoneCreate {
                zonegroup: "us".into(),
                zone: Some(Zone {
                    id: "z-west".into(),
                    name: "us-west".into(),
                    ..Default::default()
                }),
                master: false,
                default: false,
            }),
        )
        .unwrap();
        run(
            &mut ms,
            Cmd::ZoneModify(ZoneModify {
                name: "us-west".into(),
                master: Some(true),
                ..Default::default()
            }),
        )
        .unwrap();
        update_commit(&mut ms, "p2", "t2").unwrap();
        let p = current(&ms);
        assert_eq!((p.id.as_str(), p.epoch, p.realm_epoch), ("p2", 1, 3));
        assert_eq!(p.predecessor, "p1");
        assert_eq!(p.master_zone, "z-west");
        assert_eq!(ms.periods.len(), 3, "the history keeps p0, p1, p2");
    }

    #[test]
    fn names_are_unique_and_lookups_are_clear() {
        let mut ms = master_site();
        let before = ms.clone();
        let e = run(
            &mut ms,
            Cmd::ZoneCreate(ZoneCreate {
                zonegroup: "us".into(),
                zone: Some(Zone {
                    id: "z-2".into(),
                    name: "us-east".into(),
                    ..Default::default()
                }),
                master: false,
                default: false,
            }),
        )
        .unwrap_err();
        assert!(matches!(e, CommandError::Exists(_)), "{e}");
        let e = run(
            &mut ms,
            Cmd::ZoneCreate(ZoneCreate {
                zonegroup: "eu".into(),
                zone: Some(Zone {
                    id: "z-3".into(),
                    name: "eu-1".into(),
                    ..Default::default()
                }),
                master: false,
                default: false,
            }),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("zonegroup 'eu' does not exist"),
            "{e}"
        );
        assert_eq!(ms, before);
    }

    #[test]
    fn a_lost_secondary_is_re_created_under_a_new_id_but_not_the_master() {
        let mut master = master_site();
        master.zonegroups[0].zones.push(Zone {
            id: "z-west-old".into(),
            name: "us-west".into(),
            endpoints: vec!["http://west-old".into()],
            ..Default::default()
        });
        update_commit(&mut master, "p1", "t1").unwrap();
        // A new, empty cluster pulls the period and re-creates us-west.
        let mut fresh = MultisiteState::default();
        run(
            &mut fresh,
            Cmd::PeriodInstall(PeriodInstall {
                realm: realm(&master, "").ok().cloned(),
                period: Some(current(&master)),
            }),
        )
        .unwrap();
        let create = |name: &str, id: &str| {
            Cmd::ZoneCreate(ZoneCreate {
                zonegroup: "us".into(),
                zone: Some(Zone {
                    id: id.into(),
                    name: name.into(),
                    endpoints: vec!["http://west-new".into()],
                    ..Default::default()
                }),
                master: false,
                default: true,
            })
        };
        let e = run(&mut fresh, create("us-east", "z-east-2")).unwrap_err();
        assert!(e.to_string().contains("is the master zone"), "{e}");
        let (msg, _) = run(&mut fresh, create("us-west", "z-west-new")).unwrap();
        assert!(
            msg.contains("replacing its lost instance z-west-old"),
            "{msg}"
        );
        let ids: Vec<&str> = fresh.zonegroups[0]
            .zones
            .iter()
            .map(|z| z.id.as_str())
            .collect();
        assert_eq!(ids, ["z-east", "z-west-new"]);
        // Once it is local, a second create is refused as before.
        let e = run(&mut fresh, create("us-west", "z-west-3")).unwrap_err();
        assert!(matches!(e, CommandError::Exists(_)), "{e}");
    }

    #[test]
    fn an_older_or_conflicting_period_is_not_installed() {
        let mut ms = master_site();
        update_commit(&mut ms, "p1", "t1").unwrap();
        let r = realm(&ms, "").unwrap().clone();
        let mut old = current(&ms);
        old.id = "p0".into();
        old.realm_epoch = 1;
        assert!(
            run(
                &mut ms,
                Cmd::PeriodInstall(PeriodInstall {
                    realm: Some(r.clone()),
                    period: Some(old)
                })
            )
            .is_err()
        );
        let mut rival = current(&ms);
        rival.id = "rival".into();
        let e = run(
            &mut ms,
            Cmd::PeriodInstall(PeriodInstall {
                realm: Some(r),
                period: Some(rival),
            }),
        )
        .unwrap_err();
        assert!(e.to_string().contains("conflicts"), "{e}");
    }
}
