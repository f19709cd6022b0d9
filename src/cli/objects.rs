//! Object commands in the style of the `rados` tool: put, get, ls, rm, stat, xattrs, omap.

use super::Ctx;
use anyhow::Context as _;
use bytes::Bytes;
use meridian_client::ops::sub;
use serde_json::json;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;

/// `-p POOL`.
#[derive(clap::Args, Debug)]
pub struct PoolArg {
    /// Pool name.
    #[arg(short = 'p', long)]
    pub pool: String,
}

/// `-p POOL OBJECT`.
#[derive(clap::Args, Debug)]
pub struct ObjArgs {
    /// Pool name.
    #[arg(short = 'p', long)]
    pub pool: String,
    /// Object name.
    pub object: String,
}

/// `put -p POOL OBJECT FILE`.
#[derive(clap::Args, Debug)]
pub struct PutArgs {
    /// Pool name.
    #[arg(short = 'p', long)]
    pub pool: String,
    /// Object name.
    pub object: String,
    /// Input file, or `-` for stdin.
    pub file: PathBuf,
}

/// `get -p POOL OBJECT FILE`.
#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// Pool name.
    #[arg(short = 'p', long)]
    pub pool: String,
    /// Object name.
    pub object: String,
    /// Output file, or `-` for stdout.
    pub file: PathBuf,
}

/// `rm -p POOL OBJECT...`.
#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// Pool name.
    #[arg(short = 'p', long)]
    pub pool: String,
    /// Object names.
    #[arg(required = true)]
    pub objects: Vec<String>,
}

/// `setxattr -p POOL OBJECT NAME VALUE`.
#[derive(clap::Args, Debug)]
pub struct SetXattrArgs {
    /// Pool name.
    #[arg(short = 'p', long)]
    pub pool: String,
    /// Object name.
    pub object: String,
    /// Attribute name.
    pub name: String,
    /// Attribute value.
    pub value: String,
}

/// `setomapval -p POOL OBJECT KEY VALUE`.
#[derive(clap::Args, Debug)]
pub struct SetOmapArgs {
    /// Pool name.
    #[arg(short = 'p', long)]
    pub pool: String,
    /// Object name.
    pub object: String,
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

/// `meridian put`.
pub async fn put(ctx: &Ctx, a: PutArgs) -> anyhow::Result<()> {
    let data = if a.file.as_os_str() == "-" {
        let mut v = Vec::new();
        std::io::stdin().read_to_end(&mut v).context("read stdin")?;
        v
    } else {
        std::fs::read(&a.file).with_context(|| format!("read {}", a.file.display()))?
    };
    let c = ctx.connect().await?;
    let len = data.len();
    let v = c.write_full(&a.pool, &a.object, Bytes::from(data)).await?;
    ctx.print(
        &json!({"pool": a.pool, "object": a.object, "size": len, "version": v}),
        String::new,
    );
    Ok(())
}

/// `meridian get`.
pub async fn get(ctx: &Ctx, a: GetArgs) -> anyhow::Result<()> {
    let c = ctx.connect().await?;
    let data = c.read(&a.pool, &a.object).await?;
    if a.file.as_os_str() == "-" {
        std::io::stdout().write_all(&data).context("write stdout")?;
    } else {
        std::fs::write(&a.file, &data).with_context(|| format!("write {}", a.file.display()))?;
    }
    Ok(())
}

/// `meridian ls`.
pub async fn ls(ctx: &Ctx, a: PoolArg) -> anyhow::Result<()> {
    let c = ctx.connect().await?;
    let names = c.list(&a.pool).await?;
    ctx.print(&json!(names), || {
        names.iter().map(|n| format!("{n}\n")).collect()
    });
    Ok(())
}

/// `meridian rm`.
pub async fn rm(ctx: &Ctx, a: RmArgs) -> anyhow::Result<()> {
    let c = ctx.connect().await?;
    for o in &a.objects {
        c.remove(&a.pool, o).await?;
    }
    Ok(())
}

/// `meridian stat`.
pub async fn stat(ctx: &Ctx, a: ObjArgs) -> anyhow::Result<()> {
    let c = ctx.connect().await?;
    let s = c.stat(&a.pool, &a.object).await?;
    ctx.print(
        &json!({"pool": a.pool, "object": a.object, "size": s.size, "mtime_unix_ms": s.mtime_unix_ms, "version": s.version}),
        || format!("{}/{} mtime {} ms, size {}", a.pool, a.object, s.mtime_unix_ms, s.size),
    );
    Ok(())
}

/// `meridian setxattr`.
pub async fn setxattr(_ctx: &Ctx, a: SetXattrArgs) -> anyhow::Result<()> {
    let c = _ctx.connect().await?;
    c.op(
        &a.pool,
        &a.object,
        vec![sub::set_xattr(&a.name, Bytes::from(a.value))],
    )
    .await?;
    Ok(())
}

/// `meridian listxattr`.
pub async fn listxattr(ctx: &Ctx, a: ObjArgs) -> anyhow::Result<()> {
    let c = ctx.connect().await?;
    let xs = c.get_xattrs(&a.pool, &a.object).await?;
    let m: serde_json::Map<String, serde_json::Value> = xs
        .iter()
        .map(|(k, v)| (k.clone(), json!(String::from_utf8_lossy(v))))
        .collect();
    ctx.print(&json!(m), || {
        xs.iter().map(|(k, _)| format!("{k}\n")).collect()
    });
    Ok(())
}

/// `meridian setomapval`.
pub async fn setomapval(ctx: &Ctx, a: SetOmapArgs) -> anyhow::Result<()> {
    let c = ctx.connect().await?;
    c.op(
        &a.pool,
        &a.object,
        vec![sub::omap_set(vec![(
            Bytes::from(a.key),
            Bytes::from(a.value),
        )])],
    )
    .await?;
    Ok(())
}

/// `meridian listomapvals`.
pub async fn listomapvals(ctx: &Ctx, a: ObjArgs) -> anyhow::Result<()> {
    let c = ctx.connect().await?;
    let kv = c.omap_get_all(&a.pool, &a.object).await?;
    let m: serde_json::Map<String, serde_json::Value> = kv
        .iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                json!(String::from_utf8_lossy(v)),
            )
        })
        .collect();
    ctx.print(&json!(m), || {
        kv.iter()
            .map(|(k, v)| {
                format!(
                    "{}\n  {}\n",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(v)
                )
            })
            .collect()
    });
    Ok(())
}
