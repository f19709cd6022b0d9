//! The monitors' replicated state machine: the cluster map and the commands
//! that change it. Pure: `apply` is a function of (state, proposal), with the
//! clock carried inside the proposal, so every monitor and every replay of
//! the Raft log computes the same map and the same epochs.

use crate::crush_edit;
use meridian_proto::mon::{
    Bootstrap, ClusterMap, CrushRuleCreate, MonCommand, MonImage, MonProposal, OsdBootRequest,
    OsdInfo, OsdPurge, OsdSetFlag, Pool, PoolCreate, PoolRemove, PoolSet, mon_command::Cmd,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a command was refused. The entry still occupies its Raft slot; the map is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The request names something that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current map.
    #[error("{0}")]
    Exists(String),
    /// The request is malformed or out of range.
    #[error("{0}")]
    Invalid(String),
}

/// Most replicas a pool may have.
pub const MAX_POOL_SIZE: u32 = 10;
/// Most PGs a pool may have.
pub const MAX_PG_NUM: u32 = 65_536;
/// Name of the rule every new cluster starts with (as Ceph's).
pub const DEFAULT_RULE: &str = "replicated_rule";
/// OSD ids are below this (Ceph's `mon_max_osd`): every map holder sizes
/// per-OSD tables by the largest id, so an id is never trusted unbounded.
pub const MAX_OSD_ID: u32 = 10_000;
/// Cluster-wide OSD flags an operator may set. `noout`: a down OSD is not
/// marked out after `mon_osd_down_out_interval_s` (maintenance, upgrades).
pub const OSD_FLAGS: &[&str] = &["noout"];
/// Version of [`MonImage`] written by this build.
pub const IMAGE_FORMAT: u32 = 1;
/// History trimming always keeps at least this many newest epochs.
pub const MIN_HISTORY_EPOCHS: u64 = 500;

/// The replicated state: the cluster map and the placement history peering reads.
#[derive(Debug, Clone, Default)]
pub struct MonState {
    /// The current cluster map.
    pub map: ClusterMap,
    /// Every epoch at which placement changed (OSDs, CRUSH, pools), with the
    /// placement part of the map at that epoch; trimmed once every PG has
    /// been clean since (`MapHistoryTrim`).
    pub history: BTreeMap<u64, Arc<ClusterMap>>,
    /// Entities with their keys and capabilities, and the ticket-signing
    /// secrets (never in the map).
    pub auth: crate::auth::AuthState,
    /// Bumped by every applied auth change (not persisted: it only tells
    /// this process when to republish the database).
    pub auth_changes: u64,
    /// The central configuration (`config set`), never in the map.
    pub config: crate::config_db::ConfigDb,
}

/// The placement part of a map: what past-interval computation needs.
pub fn placement_part(m: &ClusterMap) -> ClusterMap {
    ClusterMap {
        fsid: m.fsid.clone(),
        epoch: m.epoch,
        osds: m.osds.clone(),
        crush: m.crush.clone(),
        pools: m.pools.clone(),
        last_pool_id: m.last_pool_id,
        ..Default::default()
    }
}

/// History maps with epoch in `[from, to]` plus the newest one before
/// `from` (the state at `from`), at most `max` of them; the bool says
/// whether more follow.
pub fn history_page(
    history: &BTreeMap<u64, Arc<ClusterMap>>,
    from: u64,
    to: u64,
    max: usize,
) -> (Vec<Arc<ClusterMap>>, bool) {
    let mut out: Vec<Arc<ClusterMap>> = Vec::new();
    if let Some((_, base)) = history.range(..from).next_back() {
        out.push(base.clone());
    }
    let mut more = false;
    for (_, m) in history.range(from..=to.max(from)) {
        if out.len() >= max.max(2) {
            more = true;
            break;
        }
        out.push(m.clone());
    }
    (out, more)
}

fn same_placement(a: &ClusterMap, b: &ClusterMap) -> bool {
    a.osds == b.osds && a.crush == b.crush && a.pools == b.pools
}

impl MonState {
    /// Restores the state from a snapshot image.
    pub fn from_image(image: MonImage) -> Self {
        let map = image.map.unwrap_or_default();
        let history = image
            .history
            .into_iter()
            .map(|m| (m.epoch, Arc::new(m)))
            .collect();
        let auth = crate::auth::AuthState {
            entities: image
                .auth
                .into_iter()
                .map(|e| (e.name.clone(), e))
                .collect(),
            secrets: image.service_secrets,
        };
        Self {
            map,
            history,
            auth,
            auth_changes: 0,
            config: crate::config_db::ConfigDb::from_image(image.config, image.config_version),
        }
    }

    /// The snapshot image of the whole state.
    pub fn image(&self) -> MonImage {
        MonImage {
            map: Some(self.map.clone()),
            history: self.history.values().map(|m| (**m).clone()).collect(),
            auth: self.auth.entities.values().cloned().collect(),
            service_secrets: self.auth.secrets.clone(),
            config: self.config.to_options(),
            config_version: self.config.version,
            format: IMAGE_FORMAT,
        }
    }

    /// Restores the state from snapshot bytes, of this version or of the
    /// previous one (a bare cluster map, without history).
    pub fn decode_image(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        use prost::Message as _;
        match MonImage::decode(bytes) {
            Ok(img) if img.format == IMAGE_FORMAT => Ok(Self::from_image(img)),
            _ => {
                let map = ClusterMap::decode(bytes)?;
                let mut st = Self {
                    history: BTreeMap::new(),
                    map,
                    ..Default::default()
                };
                if st.map.epoch > 0 {
                    st.history
                        .insert(st.map.epoch, Arc::new(placement_part(&st.map)));
                }
                Ok(st)
            }
        }
    }

    /// Oldest epoch of the placement history (0 when empty).
    pub fn history_first(&self) -> u64 {
        self.history.keys().next().copied().unwrap_or(0)
    }

    /// Applies one proposal and records the new epoch in the placement history.
    pub fn apply(&mut self, p: &MonProposal) -> Result<String, CommandError> {
        let before = self.map.epoch;
        let r = self.apply_command(p);
        if self.map.epoch != before {
            let changed = self
                .history
                .values()
                .next_back()
                .is_none_or(|last| !same_placement(last, &self.map));
            if changed {
                self.history
                    .insert(self.map.epoch, Arc::new(placement_part(&self.map)));
            }
        }
        r
    }

    /// Applies one committed proposal; `Ok` carries a human message for the caller.
    fn apply_command(&mut self, p: &MonProposal) -> Result<String, CommandError> {
        let Some(cmd) = p.command.as_ref().and_then(|c| c.cmd.as_ref()) else {
            return Err(CommandError::Invalid("empty command".into()));
        };
        if self.map.fsid.is_empty() && !matches!(cmd, Cmd::Bootstrap(_)) {
            return Err(CommandError::Invalid(
                "the cluster is not bootstrapped yet; retry in a moment".into(),
            ));
        }
        let now = p.now_unix_ms;
        match cmd {
            Cmd::Bootstrap(b) => self.bootstrap(b),
            Cmd::OsdBoot(b) => self.osd_boot(b),
            Cmd::OsdMarkDown(d) => {
                let epoch = self.map.epoch + 1;
                let osd = self.osd_mut(d.osd_id)?;
                if !osd.up || (d.boot_nonce != 0 && osd.boot_nonce != d.boot_nonce) {
                    return Ok(format!("osd.{} already down", d.osd_id));
                }
                osd.up = false;
                osd.down_at = epoch;
                osd.down_since_unix = now / 1000;
                osd.down_reason = d.reason.clone();
                self.bump();
                Ok(format!("marked osd.{} down ({})", d.osd_id, d.reason))
            }
            Cmd::OsdMarkOut(o) => {
                let osd = self.osd_mut(o.osd_id)?;
                if osd.up || !osd.r#in {
                    return Ok(format!(
                        "osd.{} not marked out (up or already out)",
                        o.osd_id
                    ));
                }
                osd.r#in = false;
                osd.reweight = 0;
                self.bump();
                Ok(format!("marked osd.{} out", o.osd_id))
            }
            Cmd::OsdSetIn(s) => {
                let osd = self.osd_mut(s.osd_id)?;
                if osd.r#in == s.r#in && osd.admin_out != s.r#in {
                    return Ok(format!(
                        "osd.{} is already {}",
                        s.osd_id,
                        if s.r#in { "in" } else { "out" }
                    ));
                }
                osd.r#in = s.r#in;
                osd.admin_out = !s.r#in;
                osd.reweight = if s.r#in { 0x10000 } else { 0 };
                self.bump();
                Ok(format!(
                    "marked {} osd.{}",
                    if s.r#in { "in" } else { "out" },
                    s.osd_id
                ))
            }
            Cmd::OsdCrushReweight(r) => {
                self.osd_mut(r.osd_id)?.weight = r.weight;
                self.map.crush = crush_edit::set_weight(&self.map.crush, r.osd_id, r.weight)
                    .map_err(CommandError::Invalid)?;
                self.bump();
                Ok(format!(
                    "reweighted osd.{} to {:.4}",
                    r.osd_id,
                    r.weight as f64 / 65536.0
                ))
            }
            Cmd::AuthAdd(a) => self.auth_change(|st| crate::auth::add(&mut st.entities, a)),
            Cmd::AuthCaps(c) => self.auth_change(|st| crate::auth::set_caps(&mut st.entities, c)),
            Cmd::AuthRm(r) => self.auth_change(|st| crate::auth::remove(&mut st.entities, r)),
            Cmd::AuthRotate(r) => self.auth_change(|st| crate::auth::rotate(st, r, now)),
            Cmd::ConfigSet(c) => self.config.set(c),
            Cmd::ConfigRm(r) => self.config.remove(r),
            Cmd::PoolCreate(c) => self.pool_create(c),
            Cmd::PoolRemove(r) => self.pool_remove(r),
            Cmd::PoolSet(s) => self.pool_set(s),
            Cmd::CrushRuleCreate(r) => self.rule_create(r),
            Cmd::OsdAlive(a) => {
                let epoch = self.map.epoch;
                let osd = self.osd_mut(a.osd_id)?;
                if !osd.up || osd.boot_nonce != a.boot_nonce {
                    return Err(CommandError::Invalid(format!(
                        "osd.{} is not up as this instance; boot first",
                        a.osd_id
                    )));
                }
                // An interval cannot start after the epoch being applied.
                let want = a.want_up_thru.min(epoch);
                if osd.up_thru >= want {
                    return Ok(format!("osd.{} up_thru already {}", a.osd_id, osd.up_thru));
                }
                osd.up_thru = want;
                self.bump();
                Ok(format!("osd.{} up_thru {want}", a.osd_id))
            }
            Cmd::OsdLost(l) => {
                let epoch = self.map.epoch + 1;
                let osd = self.osd_mut(l.osd_id)?;
                if osd.up {
                    return Err(CommandError::Invalid(format!(
                        "osd.{} is up: only a down OSD can be declared lost (stop it first)",
                        l.osd_id
                    )));
                }
                osd.lost_at = epoch;
                self.bump();
                Ok(format!("marked osd.{} lost at epoch {epoch}", l.osd_id))
            }
            Cmd::OsdSetFlag(f) => self.osd_set_flag(f),
            Cmd::OsdPurge(p) => self.osd_purge(p),
            Cmd::OsdSetRatio(r) => {
                if !(r.ratio > 0.0 && r.ratio <= 1.0) {
                    return Err(CommandError::Invalid(format!(
                        "ratio {} out of range: use a number in (0, 1]",
                        r.ratio
                    )));
                }
                let (mut near, mut backfill, mut full) =
                    meridian_proto::fullness::ratios(&self.map);
                match r.which.as_str() {
                    "nearfull" => near = r.ratio,
                    "backfillfull" => backfill = r.ratio,
                    "full" => full = r.ratio,
                    other => {
                        return Err(CommandError::Invalid(format!(
                            "unknown ratio {other:?}: use nearfull, backfillfull or full"
                        )));
                    }
                }
                if !(near <= backfill && backfill <= full) {
                    return Err(CommandError::Invalid(format!(
                        "ratios must satisfy nearfull ({near}) <= backfillfull ({backfill}) <= full ({full})"
                    )));
                }
                self.map.nearfull_ratio = near;
                self.map.backfillfull_ratio = backfill;
                self.map.full_ratio = full;
                self.bump();
                Ok(format!("set {}_ratio to {}", r.which, r.ratio))
            }
            Cmd::OsdFullness(f) => {
                let osd = self.osd_mut(f.osd_id)?;
                if osd.full_state == f.state {
                    return Ok(format!("osd.{} fullness unchanged", f.osd_id));
                }
                osd.full_state = f.state;
                self.bump();
                Ok(format!("osd.{} fullness recorded", f.osd_id))
            }
            Cmd::MapHistoryTrim(t) => {
                let keep_from = self.map.epoch.saturating_sub(MIN_HISTORY_EPOCHS);
                let before = t.before.min(keep_from);
                // Keep the newest map before the cut: it is the state at `before`.
                let base = self.history.range(..=before).next_back().map(|(e, _)| *e);
                let Some(base) = base else {
                    return Ok("nothing to trim".into());
                };
                let kept = self.history.split_off(&base);
                let n = self.history.len();
                self.history = kept;
                Ok(format!("trimmed {n} history maps before epoch {base}"))
            }
            Cmd::Multisite(m) => {
                // Applied to a copy: a refused command leaves no partial change.
                let mut ms = self.map.multisite.clone().unwrap_or_default();
                let (msg, changed) = crate::multisite::apply(&mut ms, m, now)?;
                if changed {
                    self.map.multisite = Some(ms);
                    self.bump();
                }
                Ok(msg)
            }
        }
    }

    /// Applies a change to the entity database (the map's epoch stays).
    fn auth_change(
        &mut self,
        f: impl FnOnce(&mut crate::auth::AuthState) -> Result<String, CommandError>,
    ) -> Result<String, CommandError> {
        let r = f(&mut self.auth)?;
        self.auth_changes += 1;
        Ok(r)
    }

    fn bump(&mut self) {
        self.map.epoch += 1;
    }

    fn osd_mut(&mut self, id: u32) -> Result<&mut OsdInfo, CommandError> {
        self.map
            .osds
            .iter_mut()
            .find(|o| o.id == id)
            .ok_or_else(|| CommandError::NotFound(format!("osd.{id} does not exist")))
    }

    fn bootstrap(&mut self, b: &Bootstrap) -> Result<String, CommandError> {
        if !self.map.fsid.is_empty() {
            return Ok("already bootstrapped".into());
        }
        let fd = if b.default_failure_domain.is_empty() {
            "host"
        } else {
            &b.default_failure_domain
        };
        let (crush, _) =
            crush_edit::add_rule(&crush_edit::empty_map(), DEFAULT_RULE, "default", fd, "")
                .map_err(CommandError::Invalid)?;
        self.map = ClusterMap {
            fsid: b.fsid.clone(),
            epoch: 1,
            mons: b.mons.clone(),
            crush,
            ..Default::default()
        };
        Ok(format!("created cluster {}", b.fsid))
    }

    fn osd_set_flag(&mut self, f: &OsdSetFlag) -> Result<String, CommandError> {
        if !OSD_FLAGS.contains(&f.flag.as_str()) {
            return Err(CommandError::Invalid(format!(
                "unknown OSD flag '{}': known flags are {}",
                f.flag,
                OSD_FLAGS.join(", ")
            )));
        }
        let word = if f.set { "set" } else { "unset" };
        if self.map.flags.contains(&f.flag) == f.set {
            return Ok(format!("{} is already {word}", f.flag));
        }
        if f.set {
            self.map.flags.push(f.flag.clone());
            self.map.flags.sort();
        } else {
            self.map.flags.retain(|x| x != &f.flag);
        }
        self.bump();
        Ok(format!("{} is {word}", f.flag))
    }

    /// Forgets a down OSD: its map entry, its CRUSH item and its key. Whether
    /// its data has moved elsewhere is the caller's check (`osd
    /// safe-to-destroy`): PG reports are not part of the replicated state.
    fn osd_purge(&mut self, p: &OsdPurge) -> Result<String, CommandError> {
        let Some(osd) = self.map.osds.iter().find(|o| o.id == p.osd_id) else {
            return Ok(format!("osd.{} does not exist", p.osd_id));
        };
        if osd.up {
            return Err(CommandError::Invalid(format!(
                "osd.{} is up: stop it before purging it",
                p.osd_id
            )));
        }
        self.map.crush =
            crush_edit::remove_osd(&self.map.crush, p.osd_id).map_err(CommandError::Invalid)?;
        self.map.osds.retain(|o| o.id != p.osd_id);
        self.auth.entities.remove(&format!("osd.{}", p.osd_id));
        self.auth_changes += 1;
        self.bump();
        Ok(format!("purged osd.{}", p.osd_id))
    }

    fn osd_boot(&mut self, b: &OsdBootRequest) -> Result<String, CommandError> {
        if b.osd_id >= MAX_OSD_ID {
            return Err(CommandError::Invalid(format!(
                "osd id {} out of range: ids are 0..{MAX_OSD_ID}",
                b.osd_id
            )));
        }
        if b.fsid != self.map.fsid {
            return Err(CommandError::Invalid(format!(
                "osd.{} belongs to cluster {} but this is cluster {}",
                b.osd_id, b.fsid, self.map.fsid
            )));
        }
        // A boot resent by the same running OSD (a lost reply, a retry through
        // another monitor) must not publish a new epoch: nothing changed.
        if let Some(o) = self.map.osds.iter().find(|o| o.id == b.osd_id)
            && o.up
            && o.boot_nonce == b.boot_nonce
            && o.addr == b.addr
        {
            return Ok(format!(
                "osd.{} already up since epoch {}",
                b.osd_id, o.up_from
            ));
        }
        let epoch = self.map.epoch + 1;
        let host = if b.host.is_empty() {
            "localhost"
        } else {
            &b.host
        };
        let location = crush_edit::Location {
            host: host.to_string(),
            rack: b.rack.clone(),
            datacenter: b.datacenter.clone(),
        };
        self.map.crush = crush_edit::place_osd(
            &self.map.crush,
            b.osd_id,
            b.weight,
            &b.device_class,
            &location,
        )
        .map_err(CommandError::Invalid)?;
        let existing = self.map.osds.iter_mut().find(|o| o.id == b.osd_id);
        let osd = match existing {
            Some(o) => o,
            None => {
                self.map.osds.push(OsdInfo {
                    id: b.osd_id,
                    r#in: true,
                    reweight: 0x10000,
                    ..Default::default()
                });
                self.map.osds.sort_by_key(|o| o.id);
                self.map
                    .osds
                    .iter_mut()
                    .find(|o| o.id == b.osd_id)
                    .ok_or_else(|| CommandError::Invalid("osd vanished".into()))?
            }
        };
        osd.addr = b.addr.clone();
        if b.empty_store {
            osd.store_born = epoch;
        }
        osd.up = true;
        osd.up_from = epoch;
        osd.down_since_unix = 0;
        osd.down_reason.clear();
        osd.boot_nonce = b.boot_nonce;
        osd.weight = b.weight;
        osd.device_class = b.device_class.clone();
        osd.host = host.to_string();
        osd.rack = b.rack.clone();
        osd.datacenter = b.datacenter.clone();
        if !osd.admin_out {
            osd.r#in = true;
            osd.reweight = 0x10000;
        }
        self.bump();
        Ok(format!("osd.{} booted at epoch {epoch}", b.osd_id))
    }

    fn pool_create(&mut self, c: &PoolCreate) -> Result<String, CommandError> {
        validate_pool_name(&c.name)?;
        if self.map.pools.iter().any(|p| p.name == c.name) {
            return Err(CommandError::Exists(format!(
                "pool '{}' already exists",
                c.name
            )));
        }
        if c.pg_num == 0 || c.pg_num > MAX_PG_NUM {
            return Err(CommandError::Invalid(format!(
                "pg_num {} out of range: use 1..={MAX_PG_NUM}",
                c.pg_num
            )));
        }
        if c.size == 0 || c.size > MAX_POOL_SIZE {
            return Err(CommandError::Invalid(format!(
                "size {} out of range: use 1..={MAX_POOL_SIZE}",
                c.size
            )));
        }
        let min_size = if c.min_size == 0 {
            c.size - c.size / 2
        } else {
            c.min_size
        };
        if min_size > c.size {
            return Err(CommandError::Invalid(format!(
                "min_size {min_size} exceeds size {}",
                c.size
            )));
        }
        let rule_name = if c.crush_rule.is_empty() {
            DEFAULT_RULE
        } else {
            &c.crush_rule
        };
        let rule = crush_edit::rule_id(&self.map.crush, rule_name).ok_or_else(|| {
            CommandError::NotFound(format!(
                "crush rule '{rule_name}' does not exist; create it with `meridian osd crush rule create-replicated`"
            ))
        })?;
        self.map.last_pool_id += 1;
        let epoch = self.map.epoch + 1;
        self.map.pools.push(Pool {
            id: self.map.last_pool_id,
            name: c.name.clone(),
            pg_num: c.pg_num,
            pgp_num: c.pg_num,
            size: c.size,
            min_size,
            crush_rule: rule,
            application: c.application.clone(),
            created_epoch: epoch,
            options: Default::default(),
        });
        self.bump();
        Ok(format!("pool '{}' created", c.name))
    }

    fn pool_remove(&mut self, r: &PoolRemove) -> Result<String, CommandError> {
        let idx = self
            .map
            .pools
            .iter()
            .position(|p| p.name == r.name)
            .ok_or_else(|| CommandError::NotFound(format!("pool '{}' does not exist", r.name)))?;
        if r.confirm != r.name {
            return Err(CommandError::Invalid(format!(
                "removing pool '{}' destroys its data: repeat the pool name to confirm",
                r.name
            )));
        }
        self.map.pools.remove(idx);
        self.bump();
        Ok(format!("pool '{}' removed", r.name))
    }

    fn pool_set(&mut self, s: &PoolSet) -> Result<String, CommandError> {
        let text = self.map.crush.clone();
        let pool = self
            .map
            .pools
            .iter_mut()
            .find(|p| p.name == s.name)
            .ok_or_else(|| CommandError::NotFound(format!("pool '{}' does not exist", s.name)))?;
        let num = |v: &str| -> Result<u32, CommandError> {
            v.parse()
                .map_err(|_| CommandError::Invalid(format!("{}: {v:?} is not a number", s.key)))
        };
        match s.key.as_str() {
            "size" => {
                let v = num(&s.value)?;
                if v == 0 || v > MAX_POOL_SIZE {
                    return Err(CommandError::Invalid(format!(
                        "size must be 1..={MAX_POOL_SIZE}"
                    )));
                }
                pool.size = v;
                if pool.min_size > v {
                    pool.min_size = v;
                }
            }
            "min_size" => {
                let v = num(&s.value)?;
                if v == 0 || v > pool.size {
                    return Err(CommandError::Invalid(format!(
                        "min_size must be 1..={} (the pool's size)",
                        pool.size
                    )));
                }
                pool.min_size = v;
            }
            "crush_rule" => {
                pool.crush_rule = crush_edit::rule_id(&text, &s.value).ok_or_else(|| {
                    CommandError::NotFound(format!("crush rule '{}' does not exist", s.value))
                })?;
            }
            "application" => pool.application = s.value.clone(),
            k if meridian_common::compression::OPTIONS.contains(&k) => {
                let v = meridian_common::compression::validate(k, &s.value)
                    .map_err(CommandError::Invalid)?;
                pool.options.insert(k.to_string(), v);
            }
            "pg_num" | "pgp_num" => {
                return Err(CommandError::Invalid(
                    "changing pg_num of an existing pool (PG split/merge) is not supported yet"
                        .into(),
                ));
            }
            other => {
                return Err(CommandError::Invalid(format!(
                    "unknown pool option {other:?}: use size, min_size, crush_rule, application, compression_algorithm, compression_mode or compression_required_ratio"
                )));
            }
        }
        self.bump();
        Ok(format!("set pool '{}' {} to {}", s.name, s.key, s.value))
    }

    fn rule_create(&mut self, r: &CrushRuleCreate) -> Result<String, CommandError> {
        if crush_edit::rule_id(&self.map.crush, &r.name).is_some() {
            return Err(CommandError::Exists(format!(
                "rule '{}' already exists",
                r.name
            )));
        }
        let (crush, id) = crush_edit::add_rule(
            &self.map.crush,
            &r.name,
            &r.root,
            &r.failure_domain,
            &r.device_class,
        )
        .map_err(CommandError::Invalid)?;
        self.map.crush = crush;
        self.bump();
        Ok(format!("created rule '{}' (id {id})", r.name))
    }
}

/// Pool names follow Ceph's rules loosely: non-empty, printable, no '/'.
fn validate_pool_name(name: &str) -> Result<(), CommandError> {
    if name.is_empty()
        || name.len() > 128
        || name.contains('/')
        || name.chars().any(char::is_control)
    {
        return Err(CommandError::Invalid(format!(
            "invalid pool name {name:?}: 1-128 printable characters, no '/'"
        )));
    }
    Ok(())
}

/// Wraps a command in a proposal stamped with the proposer's clock.
pub fn proposal(id: u64, origin: u64, now_unix_ms: u64, cmd: Cmd) -> MonProposal {
    MonProposal {
        id,
        origin,
        now_unix_ms,
        command: Some(MonCommand { cmd: Some(cmd) }),
    }
}
