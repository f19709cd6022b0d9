//! `meridian ratelimit set|get|enable|disable`, RGW's request limits of a
//! user or a bucket (kept in its record, so a secondary zone's command is
//! made on the metadata master and every zone's gateways enforce it).

use super::Ctx;
use super::rgw::{ZoneArg, change_bucket, modify_user, open_zone, parse_flag, print_json};
use anyhow::{Context as _, bail};
use meridian_zone::bucket::BucketChange;
use meridian_zone::user::UserChange;
use meridian_zone::{RateLimit, Zone};
use serde_json::json;

/// What a limit applies to.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every request of a user.
    User,
    /// Every request for a bucket.
    Bucket,
}

/// The user or bucket a command names.
#[derive(clap::Args, Debug)]
pub struct Target {
    #[arg(long = "ratelimit-scope", value_enum)]
    scope: Scope,
    #[arg(long)]
    uid: Option<String>,
    #[arg(long)]
    bucket: Option<String>,
}

/// `meridian ratelimit ...`.
#[derive(clap::Subcommand, Debug)]
pub enum RateLimitCmd {
    /// Sets limits per minute and per gateway (those not given keep their
    /// value; 0 = no limit).
    Set {
        #[command(flatten)]
        target: Target,
        #[arg(long = "max-read-ops")]
        max_read_ops: Option<u64>,
        #[arg(long = "max-write-ops")]
        max_write_ops: Option<u64>,
        #[arg(long = "max-read-bytes")]
        max_read_bytes: Option<u64>,
        #[arg(long = "max-write-bytes")]
        max_write_bytes: Option<u64>,
        #[arg(long, value_parser = parse_flag)]
        enabled: Option<bool>,
    },
    /// Shows the limits.
    Get {
        #[command(flatten)]
        target: Target,
    },
    /// Turns the limits on.
    Enable {
        #[command(flatten)]
        target: Target,
    },
    /// Turns the limits off (they are kept).
    Disable {
        #[command(flatten)]
        target: Target,
    },
}

enum Named {
    User(String),
    Bucket(String),
}

fn named(t: &Target) -> anyhow::Result<Named> {
    match (t.scope, &t.uid, &t.bucket) {
        (Scope::User, Some(u), _) => Ok(Named::User(u.clone())),
        (Scope::Bucket, _, Some(b)) => Ok(Named::Bucket(b.clone())),
        (Scope::User, None, _) => bail!("--ratelimit-scope=user needs --uid"),
        (Scope::Bucket, _, None) => bail!("--ratelimit-scope=bucket needs --bucket"),
    }
}

async fn current(zone: &Zone, n: &Named) -> anyhow::Result<RateLimit> {
    Ok(match n {
        Named::User(u) => {
            zone.user(u)
                .await
                .with_context(|| format!("user {u}"))?
                .ratelimit
        }
        Named::Bucket(b) => {
            zone.bucket_fresh(b)
                .await
                .with_context(|| format!("bucket {b}"))?
                .0
                .ratelimit
        }
    })
}

async fn store(zone: &Zone, n: &Named, l: RateLimit) -> anyhow::Result<RateLimit> {
    let stored = match n {
        Named::User(u) => {
            modify_user(
                zone,
                u,
                UserChange {
                    ratelimit: Some(l),
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("user {u}"))?
            .ratelimit
        }
        Named::Bucket(b) => {
            change_bucket(zone, b, BucketChange::RateLimit(l))
                .await
                .with_context(|| format!("bucket {b}"))?
                .ratelimit
        }
    };
    // Gateways keep records for `rgw_cache_ttl_ms`: once this returns,
    // every gateway of this zone enforces the change.
    tokio::time::sleep(zone.params().cache_ttl).await;
    Ok(stored)
}

fn show(n: &Named, l: &RateLimit) {
    let key = match n {
        Named::User(_) => "user_ratelimit",
        Named::Bucket(_) => "bucket_ratelimit",
    };
    print_json(&json!({ key: {
        "max_read_ops": l.max_read_ops,
        "max_write_ops": l.max_write_ops,
        "max_read_bytes": l.max_read_bytes,
        "max_write_bytes": l.max_write_bytes,
        "enabled": l.enabled,
    }}));
}

/// What a command does to the limits it reads.
type Edit = Box<dyn Fn(&mut RateLimit)>;

/// `meridian ratelimit ...`.
pub async fn ratelimit(ctx: &Ctx, z: ZoneArg, cmd: RateLimitCmd) -> anyhow::Result<()> {
    let zone = open_zone(ctx, &z).await?;
    let (target, change): (&Target, Edit) = match &cmd {
        RateLimitCmd::Get { target } => {
            let n = named(target)?;
            show(&n, &current(&zone, &n).await?);
            return Ok(());
        }
        RateLimitCmd::Enable { target } => (target, Box::new(|l| l.enabled = true)),
        RateLimitCmd::Disable { target } => (target, Box::new(|l| l.enabled = false)),
        RateLimitCmd::Set {
            target,
            max_read_ops,
            max_write_ops,
            max_read_bytes,
            max_write_bytes,
            enabled,
        } => {
            let given = [max_read_ops, max_write_ops, max_read_bytes, max_write_bytes];
            if given.iter().all(|v| v.is_none()) && enabled.is_none() {
                bail!(
                    "ratelimit set needs at least one of --max-read-ops, --max-write-ops, \
                     --max-read-bytes, --max-write-bytes, --enabled"
                );
            }
            let (r, w, rb, wb, e) = (
                *max_read_ops,
                *max_write_ops,
                *max_read_bytes,
                *max_write_bytes,
                *enabled,
            );
            (
                target,
                Box::new(move |l: &mut RateLimit| {
                    l.max_read_ops = r.unwrap_or(l.max_read_ops);
                    l.max_write_ops = w.unwrap_or(l.max_write_ops);
                    l.max_read_bytes = rb.unwrap_or(l.max_read_bytes);
                    l.max_write_bytes = wb.unwrap_or(l.max_write_bytes);
                    l.enabled = e.unwrap_or(l.enabled);
                }),
            )
        }
    };
    let n = named(target)?;
    let mut l = current(&zone, &n).await?;
    change(&mut l);
    let stored = store(&zone, &n, l).await?;
    show(&n, &stored);
    Ok(())
}
