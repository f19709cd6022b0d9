//! `meridian dev up --zones 2`: two complete dev clusters (monitors, OSDs,
//! a gateway each) under one directory, joined into realm `dev` by running
//! the seed runbook's steps with this binary, exactly as an operator would:
//! realm, master zonegroup and zone, system user and commit on the first;
//! realm pull, period pull, secondary zone and commit on the second. The
//! zones reach each other over HTTPS, with certificates from one dev CA.

use super::dev::{Shape, up};
use anyhow::{Context as _, bail};
use meridian_common::Config;
use std::path::Path;
use std::process::Command;

/// Names of the dev realm, zonegroup and zones.
pub const REALM: &str = "dev";
/// The zonegroup.
pub const ZONEGROUP: &str = "dev";
/// The clusters' subdirectories and zones, master first.
pub const ZONES: [(&str, &str); 2] = [("zone-a", "dev-a"), ("zone-b", "dev-b")];

/// Subdirectories of a multi-zone dev directory (empty for a single cluster).
pub fn zone_dirs(dir: &Path) -> Vec<std::path::PathBuf> {
    ZONES
        .iter()
        .map(|(sub, _)| dir.join(sub))
        .filter(|d| d.join("meridian.toml").exists())
        .collect()
}

fn cli(conf: &Path, args: &[&str]) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("locate the meridian binary")?;
    let out = Command::new(exe)
        .arg("-c")
        .arg(conf)
        .args(args)
        .output()
        .with_context(|| format!("run meridian {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`meridian {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Starts (or restarts) both clusters and, on first start, configures the realm.
pub async fn up_zones(dir: &Path, shape: &Shape, pg_num: u32) -> anyhow::Result<()> {
    if shape.gateways == 0 {
        bail!("--zones needs at least one gateway per zone");
    }
    let mut confs = Vec::new();
    for (i, (sub, zone)) in ZONES.iter().enumerate() {
        let mut s = shape.clone();
        // One CA for both clusters: each zone verifies the other's gateways.
        s.ca_dir = Some(std::path::absolute(dir)?.join("tls"));
        s.options.extend([
            format!("rgw_zone={zone}"),
            format!("rgw_zonegroup={ZONEGROUP}"),
            "rgw_period_poll_s=5".to_string(),
        ]);
        s.s3_port = match (shape.s3_port, i) {
            (0, _) => 0,
            (p, i) => p + i as u16 * shape.gateways as u16,
        };
        let sub_dir = dir.join(sub);
        if sub_dir.join("meridian.toml").exists() {
            s.options.clear();
        }
        println!("== cluster {sub} (zone {zone}) ==");
        up(&sub_dir, &s, pg_num).await?;
        confs.push(sub_dir.join("meridian.toml"));
    }
    let endpoint = |conf: &Path| -> anyhow::Result<Vec<String>> {
        let cfg = Config::load(conf)?;
        Ok(cfg.gateway.values().map(|g| g.endpoint_url()).collect())
    };
    let (a, b) = (&confs[0], &confs[1]);
    let (ea, eb) = (endpoint(a)?, endpoint(b)?);
    let key_file = dir.join("system-key");
    if !key_file.exists() {
        let ak = meridian_zone::user::generate_access_key();
        let sk = meridian_zone::user::generate_secret();
        configure(a, b, &ea, &eb, &ak, &sk)?;
        std::fs::write(&key_file, format!("{ak} {sk}\n"))
            .with_context(|| format!("write {}", key_file.display()))?;
    }
    // Metadata sync brings the master's users (the `dev` user among them)
    // to the secondary: wait for it, so the keys printed work on both.
    let key_of = |conf: &Path| -> anyhow::Result<(String, String)> {
        let v: serde_json::Value =
            serde_json::from_str(&cli(conf, &["user", "info", "--uid=dev"])?)?;
        Ok((
            v["keys"][0]["access_key"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            v["keys"][0]["secret_key"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ))
    };
    let dev_key = key_of(a)?;
    let syncing = Config::load(b)?.global.rgw_run_sync_thread;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while syncing && key_of(b).ok().as_ref() != Some(&dev_key) {
        if std::time::Instant::now() > deadline {
            bail!(
                "metadata sync did not bring user dev to zone {} within 60 s",
                ZONES[1].1
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let period = cli(b, &["period", "get-current"])?;
    println!();
    println!(
        "Realm {REALM}: zone {} (master) at {}, zone {} (secondary) at {}",
        ZONES[0].1,
        ea.join(", "),
        ZONES[1].1,
        eb.join(", ")
    );
    println!("  {}", period.trim().replace('\n', " "));
    println!(
        "  S3 user dev in both zones (replicated from the master): access key {}  secret {}",
        dev_key.0, dev_key.1
    );
    println!("  meridian -c {} sync status", b.display());
    println!(
        "  meridian -c {} period get      # or -c {}",
        a.display(),
        b.display()
    );
    println!("Stop both: meridian dev down --dir {}", dir.display());
    Ok(())
}

/// The seed's "Configuring the Realm, Zonegroups, and Zones" and
/// "Configuring the Secondary Zone", step by step.
fn configure(
    a: &Path,
    b: &Path,
    ea: &[String],
    eb: &[String],
    ak: &str,
    sk: &str,
) -> anyhow::Result<()> {
    let (ma, sa) = (ZONES[0].1, ZONES[1].1);
    let ea_s = ea.join(",");
    let eb_s = eb.join(",");
    let key = [format!("--access-key={ak}"), format!("--secret={sk}")];
    cli(
        a,
        &[
            "realm",
            "create",
            &format!("--rgw-realm={REALM}"),
            "--default",
        ],
    )?;
    cli(
        a,
        &[
            "zonegroup",
            "create",
            &format!("--rgw-zonegroup={ZONEGROUP}"),
            &format!("--endpoints={ea_s}"),
            &format!("--rgw-realm={REALM}"),
            "--master",
            "--default",
        ],
    )?;
    cli(
        a,
        &[
            "zone",
            "create",
            &format!("--rgw-zonegroup={ZONEGROUP}"),
            &format!("--rgw-zone={ma}"),
            &format!("--endpoints={ea_s}"),
            &key[0],
            &key[1],
            "--master",
            "--default",
        ],
    )?;
    cli(
        a,
        &[
            "user",
            "create",
            "--uid=zone.user",
            "--display-name=Zone Sync User",
            &key[0],
            &key[1],
            "--system",
        ],
    )?;
    cli(a, &["period", "update", "--commit"])?;
    let url = format!("--url={}", ea[0]);
    cli(b, &["realm", "pull", &url, &key[0], &key[1]])?;
    cli(b, &["realm", "default", &format!("--rgw-realm={REALM}")])?;
    cli(b, &["period", "pull", &url, &key[0], &key[1]])?;
    cli(
        b,
        &[
            "zone",
            "create",
            &format!("--rgw-zonegroup={ZONEGROUP}"),
            &format!("--rgw-zone={sa}"),
            &format!("--endpoints={eb_s}"),
            &key[0],
            &key[1],
        ],
    )?;
    cli(
        b,
        &[
            "zonegroup",
            "modify",
            &format!("--rgw-zonegroup={ZONEGROUP}"),
            &format!("--endpoints={ea_s},{eb_s}"),
        ],
    )?;
    cli(b, &["period", "update", "--commit"])?;
    Ok(())
}
