//! The S3 side of the CLI, as radosgw-admin spells it: `gateway` (the
//! daemon), `user`, `bucket`, `gc` and the replication logs. Users and
//! buckets print as radosgw-admin's JSON.

use super::Ctx;
use anyhow::Context as _;
use meridian_sync::trim::{LogTrimmer, TrimScope};
use meridian_zone::log::LogKind;
use meridian_zone::user::{NewUser, UserChange};
use meridian_zone::{User, Zone, ZoneParams};
use serde_json::{Value, json};

/// `meridian gateway --id N`: run an S3 gateway.
#[derive(clap::Args, Debug)]
pub struct GatewayArgs {
    /// Run the gateway with this id (its [gateway.ID] config section).
    #[arg(long)]
    pub id: String,
    /// Serve HTTPS with this PEM certificate chain (overrides the section's
    /// `tls_cert`); without `tls_addr` in the section, `addr` serves HTTPS.
    #[arg(long = "tls-cert", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The certificate's PEM private key (overrides `tls_key`).
    #[arg(long = "tls-key", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

/// Which zone an admin command acts on.
#[derive(clap::Args, Debug, Clone)]
pub struct ZoneArg {
    /// Zone (default: global.rgw_zone of the config).
    #[arg(long = "rgw-zone", visible_alias = "zone", global = true)]
    pub zone: Option<String>,
}

/// `meridian user ...`.
#[derive(clap::Subcommand, Debug)]
pub enum UserCmd {
    /// Create a user with an S3 key pair (generated unless given).
    Create {
        #[arg(long)]
        uid: String,
        #[arg(long = "display-name")]
        display_name: String,
        #[arg(long, default_value = "")]
        email: String,
        #[arg(long = "access-key", default_value = "")]
        access_key: String,
        #[arg(long = "secret", visible_alias = "secret-key", default_value = "")]
        secret: String,
        /// A system user (acts for the zone: multi-site sync, period pulls).
        #[arg(long)]
        system: bool,
        /// Create it suspended (1/true).
        #[arg(long, value_parser = parse_flag)]
        suspended: Option<bool>,
        /// Bucket limit (0 = unlimited).
        #[arg(long = "max-buckets", default_value_t = 1000)]
        max_buckets: u32,
    },
    /// Show a user.
    Info {
        #[arg(long)]
        uid: String,
    },
    /// List uids.
    List,
    /// Change a user.
    Modify {
        #[arg(long)]
        uid: String,
        #[arg(long = "display-name")]
        display_name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// Suspend (1/true) or reinstate (0/false).
        #[arg(long, value_parser = parse_flag)]
        suspended: Option<bool>,
        /// Make (true) or unmake (false) a system user.
        #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_flag)]
        system: Option<bool>,
        #[arg(long = "max-buckets")]
        max_buckets: Option<u32>,
        /// Add this access key (with --secret, or a generated secret).
        #[arg(long = "access-key")]
        access_key: Option<String>,
        #[arg(long = "secret", visible_alias = "secret-key")]
        secret: Option<String>,
    },
    /// Suspend a user.
    Suspend {
        #[arg(long)]
        uid: String,
    },
    /// Reinstate a suspended user.
    Enable {
        #[arg(long)]
        uid: String,
    },
    /// Remove a user (who must own no buckets).
    Rm {
        #[arg(long)]
        uid: String,
    },
}

/// `meridian key ...`.
#[derive(clap::Subcommand, Debug)]
pub enum KeyCmd {
    /// Remove an access key from its user.
    Rm {
        #[arg(long)]
        uid: String,
        #[arg(long = "access-key")]
        access_key: String,
    },
}

/// `meridian bucket ...`.
#[derive(clap::Subcommand, Debug)]
pub enum BucketCmd {
    /// Bucket names, or with --bucket the bucket's objects.
    List {
        #[arg(long)]
        bucket: Option<String>,
        /// With --bucket: at most this many entries.
        #[arg(long = "max-entries", default_value_t = 10_000)]
        max_entries: usize,
    },
    /// Object count and bytes of one bucket (or every bucket).
    Stats {
        #[arg(long)]
        bucket: Option<String>,
    },
    /// Compare the data pool with the index: orphaned and missing data objects.
    Check {
        #[arg(long, required_unless_present = "all")]
        bucket: Option<String>,
        /// Every bucket of the zone.
        #[arg(long, conflicts_with = "bucket")]
        all: bool,
    },
    /// Multi-site sync of one bucket.
    Sync {
        #[command(subcommand)]
        cmd: super::sync::BucketSyncCmd,
    },
}

/// `meridian gc ...`.
#[derive(clap::Subcommand, Debug)]
pub enum GcCmd {
    /// Run garbage collection now.
    Process {
        /// Ignore rgw_gc_obj_min_wait (writes in progress are never collected early).
        #[arg(long = "include-all")]
        include_all: bool,
    },
    /// Pending GC entries (due ones, or all with --include-all).
    List {
        #[arg(long = "include-all")]
        include_all: bool,
    },
}

/// `meridian lc ...` (RGW's lifecycle commands).
#[derive(clap::Subcommand, Debug)]
pub enum LcCmd {
    /// Buckets with lifecycle rules and how their last pass went.
    List,
    /// Run the rules now (of every bucket, or one), printing each bucket's result.
    Process {
        #[arg(long)]
        bucket: Option<String>,
    },
}

/// `meridian bilog list|trim`.
#[derive(clap::Subcommand, Debug)]
pub enum BilogCmd {
    /// Removes a bucket's index log entries: through --end-marker (of one
    /// shard, or every shard), or without it through what every zone that
    /// syncs the bucket has applied (what the zone does by itself every
    /// rgw_sync_log_trim_interval_s).
    Trim {
        #[arg(long)]
        bucket: String,
        #[arg(long = "shard-id")]
        shard: Option<u32>,
        #[arg(long = "end-marker")]
        end_marker: Option<String>,
    },
    /// Bucket index log entries of one bucket (every shard, or --shard-id).
    List {
        #[arg(long)]
        bucket: String,
        #[arg(long = "shard-id")]
        shard: Option<u32>,
        #[arg(long, default_value = "")]
        marker: String,
        #[arg(long = "max-entries", default_value_t = 1000)]
        max_entries: u32,
    },
}

/// `meridian datalog|mdlog list|trim`.
#[derive(clap::Subcommand, Debug)]
pub enum LogCmd {
    /// Removes entries: through --end-marker (of one shard, or every
    /// shard), or without it through what every zone that reads the log
    /// has applied (what the zone does by itself every
    /// rgw_sync_log_trim_interval_s).
    Trim {
        #[arg(long = "shard-id")]
        shard: Option<u32>,
        #[arg(long = "end-marker")]
        end_marker: Option<String>,
    },
    /// Entries of every shard (or --shard-id).
    List {
        #[arg(long = "shard-id")]
        shard: Option<u32>,
        #[arg(long, default_value = "")]
        marker: String,
        #[arg(long = "max-entries", default_value_t = 1000)]
        max_entries: u32,
    },
}

pub(crate) fn parse_flag(s: &str) -> Result<bool, String> {
    match s {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        o => Err(format!("{o:?}: use 1/true or 0/false")),
    }
}

/// Runs an S3 gateway daemon.
pub async fn gateway(ctx: &Ctx, a: GatewayArgs) -> anyhow::Result<()> {
    let mut cfg = ctx.config()?;
    if let (Some(cert), Some(key)) = (a.tls_cert, a.tls_key) {
        let section = cfg
            .gateway
            .get_mut(&a.id)
            .with_context(|| format!("config {} has no [gateway.{}]", cfg.path.display(), a.id))?;
        section.tls_cert = Some(cert);
        section.tls_key = Some(key);
    }
    meridian_gateway::run(cfg, a.id).await
}

/// Opens the zone an admin command names (the config's rgw_zone by default).
pub async fn open_zone(ctx: &Ctx, z: &ZoneArg) -> anyhow::Result<Zone> {
    let cfg = ctx.config()?;
    let name = z
        .zone
        .clone()
        .unwrap_or_else(|| cfg.global.rgw_zone.clone());
    let params = ZoneParams::from_global(&cfg.global, &name, &cfg.global.rgw_zonegroup);
    let cluster = meridian_gateway::connect(&cfg, ctx.credentials(&cfg)?).await?;
    Zone::open(cluster, params)
        .await
        .with_context(|| format!("open zone {name}"))
}

/// The shards a log command covers: `--shard-id` (checked) or all `n`.
fn shard_ids(shard: Option<u32>, n: u32, what: &str) -> anyhow::Result<Vec<u32>> {
    match shard {
        Some(s) if s < n => Ok(vec![s]),
        Some(s) => anyhow::bail!("{what} has {n} shards; --shard-id {s} is out of range"),
        None => Ok((0..n).collect()),
    }
}

/// A log marker as `list` prints it (digits; a marker of another form
/// would compare above every entry and trim the whole log).
fn log_marker(m: &str) -> anyhow::Result<String> {
    if m.is_empty() || m.len() > 20 || !m.bytes().all(|b| b.is_ascii_digit()) {
        anyhow::bail!("--end-marker {m:?}: give a marker as `list` prints it (up to 20 digits)");
    }
    Ok(format!("{:0>20}", m))
}

/// A one-off trim pass of `zone`'s logs with the cluster's settings.
fn trimmer(ctx: &Ctx, zone: &Zone) -> anyhow::Result<LogTrimmer> {
    let cfg = ctx.config()?;
    Ok(LogTrimmer::new(
        zone.clone(),
        meridian_sync::SyncSettings::from_global(&cfg.global),
        "cli".into(),
    ))
}

/// radosgw-admin's user info JSON.
pub fn user_json(u: &User) -> Value {
    json!({
        "user_id": u.user_id,
        "display_name": u.display_name,
        "email": u.email,
        "suspended": u8::from(u.suspended),
        "max_buckets": u.max_buckets,
        "subusers": [],
        "keys": u.keys.iter().map(|k| json!({
            "user": k.user,
            "access_key": k.access_key,
            "secret_key": k.secret_key,
        })).collect::<Vec<_>>(),
        "swift_keys": [],
        "caps": [],
        "op_mask": "read, write, delete",
        "system": u.system,
        "default_placement": "",
        "placement_tags": [],
        "type": "rgw",
        "mfa_ids": [],
    })
}

pub(crate) fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// `meridian user ...`.
pub async fn user(ctx: &Ctx, z: ZoneArg, cmd: UserCmd) -> anyhow::Result<()> {
    let zone = open_zone(ctx, &z).await?;
    let u = match cmd {
        UserCmd::Create {
            uid,
            display_name,
            email,
            access_key,
            secret,
            system,
            suspended,
            max_buckets,
        } => {
            create_user(
                &zone,
                NewUser {
                    uid,
                    display_name,
                    email,
                    access_key,
                    secret,
                    system,
                    suspended: suspended.unwrap_or(false),
                    max_buckets,
                },
            )
            .await?
        }
        UserCmd::Info { uid } => zone.user(&uid).await?,
        UserCmd::List => {
            print_json(&json!(zone.list_users().await?));
            return Ok(());
        }
        UserCmd::Modify {
            uid,
            display_name,
            email,
            suspended,
            system,
            max_buckets,
            access_key,
            secret,
        } => {
            let add_key = match (access_key, secret) {
                (Some(a), s) => Some((a, s.unwrap_or_default())),
                (None, Some(_)) => anyhow::bail!("--secret needs --access-key"),
                (None, None) => None,
            };
            modify_user(
                &zone,
                &uid,
                UserChange {
                    display_name,
                    email,
                    suspended,
                    system,
                    max_buckets,
                    add_key,
                    remove_key: None,
                    ratelimit: None,
                },
            )
            .await?
        }
        UserCmd::Suspend { uid } => {
            modify_user(
                &zone,
                &uid,
                UserChange {
                    suspended: Some(true),
                    ..Default::default()
                },
            )
            .await?
        }
        UserCmd::Enable { uid } => {
            modify_user(
                &zone,
                &uid,
                UserChange {
                    suspended: Some(false),
                    ..Default::default()
                },
            )
            .await?
        }
        UserCmd::Rm { uid } => {
            remove_user(&zone, &uid).await?;
            return Ok(());
        }
    };
    print_json(&user_json(&u));
    Ok(())
}

/// Sends a user write to the metadata master (this zone is a secondary, as
/// radosgw-admin forwards them) and stores the master's record here, so it
/// is usable at once and metadata sync never undoes it. None: the zone is
/// the master (or standalone) and writes locally.
async fn forward_user(
    zone: &Zone,
    op: meridian_proto::multisite::forward_user_request::Op,
    uid: &str,
    spec: Vec<u8>,
) -> anyhow::Result<Option<Option<User>>> {
    use meridian_proto::multisite::ForwardUserRequest;
    let req = ForwardUserRequest {
        auth: None,
        op: op as i32,
        uid: uid.to_string(),
        spec: spec.into(),
    };
    let Some(reply) = to_master(zone, "user changes", req, |mut c, r| async move {
        c.forward_user(r).await
    })
    .await?
    else {
        return Ok(None);
    };
    if reply.user.is_empty() {
        zone.apply_user_removal(uid).await?;
        return Ok(Some(None));
    }
    let u: User =
        serde_json::from_slice(&reply.user).context("user record from the master zone")?;
    zone.apply_user(&u).await?;
    Ok(Some(Some(u)))
}

/// Sends `req`, signed with this zone's system key, to the metadata master
/// zone with `call` (any of its endpoints). None: this zone is the master
/// (or standalone) and the caller writes locally.
async fn to_master<Q, T, F, Fut>(
    zone: &Zone,
    what: &str,
    req: Q,
    call: F,
) -> anyhow::Result<Option<T>>
where
    Q: meridian_sync::peer::Signed + Clone,
    F: Fn(
        meridian_proto::multisite::zone_service_client::ZoneServiceClient<tonic::transport::Channel>,
        Q,
    ) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let role = meridian_gateway::site::SiteRole::of(&zone.cluster().map().map, &zone.params().zone);
    if role.is_master {
        return Ok(None);
    }
    let key = role.system_key.clone().with_context(|| {
        format!(
            "zone {} is a secondary without a system key: {what} must go to the master zone {} (zone modify --access-key --secret)",
            role.zone, role.master_zone
        )
    })?;
    let reply = meridian_gateway::peer::on_any(&role.master_endpoints, |c| {
        call(c, meridian_gateway::peer::sign(req.clone(), &key))
    })
    .await
    .map_err(|s| {
        anyhow::anyhow!(
            "the metadata master zone {} refused or could not be reached: {}",
            role.master_zone,
            s.message()
        )
    })?;
    Ok(Some(reply))
}

/// Changes a bucket record where the metadata master keeps it: here on the
/// master (or a standalone zone), else forwarded to the master, whose record
/// is then stored here too (as the gateway does for S3 bucket writes).
pub(crate) async fn change_bucket(
    zone: &Zone,
    bucket: &str,
    change: meridian_zone::bucket::BucketChange,
) -> anyhow::Result<meridian_zone::BucketInfo> {
    use meridian_proto::multisite::{ForwardBucketRequest, forward_bucket_request::Op};
    let (local, _) = zone.bucket_fresh(bucket).await?;
    let req = ForwardBucketRequest {
        auth: None,
        op: Op::Update as i32,
        bucket: bucket.to_string(),
        uid: local.owner.clone(),
        acl: String::new(),
        change: serde_json::to_vec(&change)?.into(),
        zonegroup: local.zonegroup.clone(),
    };
    let Some(reply) = to_master(zone, "bucket changes", req, |mut c, r| async move {
        c.forward_bucket(r).await
    })
    .await?
    else {
        return Ok(zone.change_bucket(bucket, &change).await?);
    };
    let info: meridian_zone::BucketInfo =
        serde_json::from_slice(&reply.bucket_info).context("bucket record from the master zone")?;
    zone.apply_bucket(&info).await?;
    Ok(info)
}

async fn create_user(zone: &Zone, spec: NewUser) -> anyhow::Result<User> {
    use meridian_proto::multisite::forward_user_request::Op;
    let body = serde_json::to_vec(&spec)?;
    match forward_user(zone, Op::Create, &spec.uid, body).await? {
        Some(Some(u)) => Ok(u),
        Some(None) => anyhow::bail!("the master zone returned no user"),
        None => Ok(zone.create_user(spec).await?),
    }
}

pub(crate) async fn modify_user(
    zone: &Zone,
    uid: &str,
    change: UserChange,
) -> anyhow::Result<User> {
    use meridian_proto::multisite::forward_user_request::Op;
    let body = serde_json::to_vec(&change)?;
    match forward_user(zone, Op::Modify, uid, body).await? {
        Some(Some(u)) => Ok(u),
        Some(None) => anyhow::bail!("the master zone returned no user"),
        None => Ok(zone.modify_user(uid, change).await?),
    }
}

async fn remove_user(zone: &Zone, uid: &str) -> anyhow::Result<()> {
    use meridian_proto::multisite::forward_user_request::Op;
    match forward_user(zone, Op::Remove, uid, Vec::new()).await? {
        Some(_) => Ok(()),
        None => Ok(zone.remove_user(uid).await?),
    }
}

/// `meridian key rm`.
pub async fn key(ctx: &Ctx, z: ZoneArg, cmd: KeyCmd) -> anyhow::Result<()> {
    let zone = open_zone(ctx, &z).await?;
    let KeyCmd::Rm { uid, access_key } = cmd;
    let u = modify_user(
        &zone,
        &uid,
        UserChange {
            remove_key: Some(access_key),
            ..Default::default()
        },
    )
    .await?;
    print_json(&user_json(&u));
    Ok(())
}

fn ns_to_rfc3339(ns: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ns as i128)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// `meridian bucket ...`.
pub async fn bucket(ctx: &Ctx, z: ZoneArg, cmd: BucketCmd) -> anyhow::Result<()> {
    let zone = open_zone(ctx, &z).await?;
    match cmd {
        BucketCmd::Sync { cmd } => return super::sync::bucket_sync(ctx, &z, cmd).await,
        BucketCmd::List {
            bucket: None,
            max_entries: _,
        } => {
            let names: Vec<String> = zone
                .list_buckets(None)
                .await?
                .into_iter()
                .map(|b| b.name)
                .collect();
            print_json(&json!(names));
        }
        BucketCmd::List {
            bucket: Some(name),
            max_entries,
        } => {
            let b = zone.bucket(&name).await?;
            let mut out = Vec::new();
            let mut after: Option<String> = None;
            let mut vid: Option<String> = None;
            loop {
                let page = zone
                    .list_versions(
                        &b,
                        &meridian_zone::object::ListParams {
                            prefix: String::new(),
                            delimiter: None,
                            after: after.clone(),
                            max: 1000,
                        },
                        vid.as_deref(),
                    )
                    .await?;
                for (e, latest) in &page.versions {
                    out.push(json!({
                        "name": e.key,
                        "instance": if e.version_id == "null" { "" } else { e.version_id.as_str() },
                        "exists": !e.delete_marker,
                        "current": latest,
                        "meta": {
                            "size": e.size,
                            "mtime": ns_to_rfc3339(e.mtime_ns),
                            "etag": e.etag,
                            "owner": e.owner,
                            "content_type": e.attrs.content_type.clone().unwrap_or_default(),
                        },
                    }));
                }
                if !page.truncated || out.len() >= max_entries {
                    break;
                }
                (after, vid) = match page.next {
                    Some((k, v)) => (Some(k), Some(v)),
                    None => break,
                };
            }
            out.truncate(max_entries);
            print_json(&json!(out));
        }
        BucketCmd::Stats { bucket } => {
            let names = match bucket {
                Some(b) => vec![b],
                None => zone
                    .list_buckets(None)
                    .await?
                    .into_iter()
                    .map(|b| b.name)
                    .collect(),
            };
            let mut all = Vec::new();
            for n in &names {
                let (b, _) = zone.bucket_fresh(n).await?;
                let s = zone.bucket_stats(n).await?;
                all.push(json!({
                    "bucket": b.name,
                    "id": b.id,
                    "marker": b.id,
                    "owner": b.owner,
                    "zonegroup": b.zonegroup,
                    "num_shards": b.num_shards,
                    "versioning": format!("{:?}", b.versioning).to_lowercase(),
                    "creation_time": ns_to_rfc3339(b.created_ms * 1_000_000),
                    "usage": {"rgw.main": {
                        "size": s.size, "size_actual": s.size_actual, "size_utilized": s.size_utilized,
                        "size_kb": s.size.div_ceil(1024), "size_kb_actual": s.size_actual.div_ceil(1024),
                        "size_kb_utilized": s.size_utilized.div_ceil(1024), "num_objects": s.num_objects}},
                    "multipart_uploads": s.uploads,
                }));
            }
            if all.len() == 1 && names.len() == 1 {
                print_json(&all[0]);
            } else {
                print_json(&json!(all));
            }
        }
        BucketCmd::Check { bucket, all } => {
            let names = match bucket {
                Some(b) if !all => vec![b],
                _ => zone
                    .list_buckets(None)
                    .await?
                    .into_iter()
                    .map(|b| b.name)
                    .collect(),
            };
            let mut out = Vec::new();
            for (i, name) in names.iter().enumerate() {
                if names.len() > 1 {
                    eprintln!("checking bucket {name} ({}/{})", i + 1, names.len());
                }
                let r = zone
                    .check_bucket(name)
                    .await
                    .with_context(|| format!("bucket {name}"))?;
                out.push(serde_json::to_value(&r)?);
            }
            match (all, out.pop()) {
                (false, Some(one)) => print_json(&one),
                (_, last) => {
                    out.extend(last);
                    print_json(&json!(out));
                }
            }
        }
    }
    Ok(())
}

/// `meridian gc ...`.
pub async fn gc(ctx: &Ctx, z: ZoneArg, cmd: GcCmd) -> anyhow::Result<()> {
    let zone = open_zone(ctx, &z).await?;
    match cmd {
        GcCmd::Process { include_all } => {
            let r = zone.gc_process(include_all).await?;
            print_json(&serde_json::to_value(&r)?);
        }
        GcCmd::List { include_all } => {
            let items = zone.gc_list(include_all).await?;
            print_json(&serde_json::to_value(&items)?);
        }
    }
    Ok(())
}

/// `meridian lc ...`.
pub async fn lc(ctx: &Ctx, z: ZoneArg, cmd: LcCmd) -> anyhow::Result<()> {
    let cfg = ctx.config()?;
    let zone = open_zone(ctx, &z).await?;
    match cmd {
        LcCmd::List => print_json(&serde_json::to_value(zone.lc_list().await?)?),
        LcCmd::Process { bucket } => {
            let (day, _) = meridian_gateway::lifecycle_days(&cfg.global);
            let done = zone.lc_process(bucket.as_deref(), day).await?;
            print_json(&serde_json::to_value(done)?);
        }
    }
    Ok(())
}

/// `meridian bilog list`.
pub async fn bilog(ctx: &Ctx, z: ZoneArg, cmd: BilogCmd) -> anyhow::Result<()> {
    let zone = open_zone(ctx, &z).await?;
    let (bucket, shard, marker, max_entries) = match cmd {
        BilogCmd::List {
            bucket,
            shard,
            marker,
            max_entries,
        } => (bucket, shard, marker, max_entries),
        BilogCmd::Trim {
            bucket,
            shard,
            end_marker,
        } => {
            let b = zone.bucket(&bucket).await?;
            let shards = shard_ids(shard, b.num_shards, &format!("bucket {bucket}"))?;
            let report = match end_marker {
                Some(m) => {
                    let m = log_marker(&m)?;
                    let mut n = 0;
                    for s in shards {
                        n += zone.trim_bilog_shard(&b.id, s, &m).await?;
                    }
                    json!({"bilog_trimmed": n})
                }
                None if shard.is_some() => anyhow::bail!(
                    "--shard-id needs --end-marker; without both, every shard is trimmed \
                     through what every zone that syncs the bucket has applied"
                ),
                None => {
                    let scope = TrimScope {
                        bilog: true,
                        buckets: vec![b.id.clone()],
                        ..TrimScope::default()
                    };
                    serde_json::to_value(trimmer(ctx, &zone)?.pass(&scope).await?)?
                }
            };
            print_json(&report);
            return Ok(());
        }
    };
    let b = zone.bucket(&bucket).await?;
    let shards: Vec<u32> = match shard {
        Some(s) if s < b.num_shards => vec![s],
        Some(s) => anyhow::bail!(
            "bucket {bucket} has {} shards; --shard-id {s} is out of range",
            b.num_shards
        ),
        None => (0..b.num_shards).collect(),
    };
    let mut out = Vec::new();
    for s in shards {
        let (items, _) = zone.bilog_list(&b, s, &marker, max_entries).await?;
        for i in items {
            out.push(json!({
                "shard_id": s,
                "op_id": format!("{s}#{}", i.marker),
                "marker": i.marker,
                "op": i.entry.op,
                "object": i.entry.key,
                "instance": i.entry.version_id,
                "mtime_ns": i.entry.mtime_ns,
                "etag": i.entry.etag,
                "size": i.entry.size,
                "zones_trace": i.entry.zone_trace,
                "versioned": i.entry.versioned,
            }));
        }
    }
    print_json(&json!(out));
    Ok(())
}

/// `meridian datalog list` / `meridian mdlog list`.
pub async fn log(ctx: &Ctx, z: ZoneArg, metadata: bool, cmd: LogCmd) -> anyhow::Result<()> {
    let zone = open_zone(ctx, &z).await?;
    let n = if metadata {
        zone.params().mdlog_shards
    } else {
        zone.params().datalog_shards
    };
    let (shard, marker, max_entries) = match cmd {
        LogCmd::List {
            shard,
            marker,
            max_entries,
        } => (shard, marker, max_entries),
        LogCmd::Trim { shard, end_marker } => {
            let (kind, what) = if metadata {
                (LogKind::Metadata, "mdlog")
            } else {
                (LogKind::Data, "datalog")
            };
            let shards = shard_ids(shard, n, &format!("the {what}"))?;
            let report = match end_marker {
                Some(m) => {
                    let m = log_marker(&m)?;
                    let mut trimmed = 0;
                    for s in shards {
                        trimmed += zone.trim_zone_log(kind, s, &m).await?;
                    }
                    let mut m = serde_json::Map::new();
                    m.insert(format!("{what}_trimmed"), json!(trimmed));
                    Value::Object(m)
                }
                None if shard.is_some() => anyhow::bail!(
                    "--shard-id needs --end-marker; without both, every shard is trimmed \
                     through what every zone that reads the {what} has applied"
                ),
                None => {
                    let scope = TrimScope {
                        mdlog: metadata,
                        datalog: !metadata,
                        ..TrimScope::default()
                    };
                    serde_json::to_value(trimmer(ctx, &zone)?.pass(&scope).await?)?
                }
            };
            print_json(&report);
            return Ok(());
        }
    };
    let shards: Vec<u32> = shard.map(|s| vec![s]).unwrap_or_else(|| (0..n).collect());
    let mut out = Vec::new();
    for s in shards {
        if metadata {
            for i in zone.mdlog_list(s, &marker, max_entries).await?.0 {
                out.push(json!({"shard_id": s, "marker": i.marker, "section": i.entry.section, "name": i.entry.name, "op": i.entry.op, "timestamp_ms": i.entry.ts_ms}));
            }
        } else {
            for i in zone.datalog_list(s, &marker, max_entries).await?.0 {
                out.push(json!({"shard_id": s, "marker": i.marker, "bucket": i.entry.bucket, "bucket_id": i.entry.bucket_id, "bucket_shard": i.entry.shard, "timestamp_ms": i.entry.ts_ms}));
            }
        }
    }
    print_json(&json!(out));
    Ok(())
}
