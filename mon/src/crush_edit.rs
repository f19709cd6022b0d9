//! Edits of the CRUSH map kept in the cluster map, in Ceph's binary encoding
//! (lossless: crushtool's text keeps only three decimals of a weight). Each
//! edit decodes, changes and re-encodes; bucket ids stay stable across edits,
//! so placement only moves where the change demands it.

use bytes::Bytes;
use meridian_crush::{CrushBuilder, CrushMap, binary};

/// Where an OSD sits in the CRUSH hierarchy below root `default`.
#[derive(Debug, Clone, Default)]
pub struct Location {
    /// Host bucket name.
    pub host: String,
    /// Rack bucket name (optional).
    pub rack: String,
    /// Datacenter bucket name (optional).
    pub datacenter: String,
}

fn parse(t: &[u8]) -> Result<CrushMap, String> {
    binary::decode(t).map_err(|e| format!("stored CRUSH map does not decode: {e}"))
}

/// A CRUSH map with Ceph's default types, root `default` and no rules.
pub fn empty_map() -> Bytes {
    Bytes::from(binary::encode(&CrushBuilder::new().build()))
}

/// Adds the OSD at `loc` (moving it if it sat elsewhere) with `weight` (16.16).
pub fn place_osd(
    t: &[u8],
    osd: u32,
    weight: u32,
    class: &str,
    loc: &Location,
) -> Result<Bytes, String> {
    let mut b = CrushBuilder::from(parse(t)?);
    let mut path: Vec<(&str, &str)> = vec![("root", "default")];
    if !loc.datacenter.is_empty() {
        path.push(("datacenter", &loc.datacenter));
    }
    if !loc.rack.is_empty() {
        path.push(("rack", &loc.rack));
    }
    path.push(("host", &loc.host));
    let _ = b.remove_osd(osd as i32);
    let class = (!class.is_empty()).then_some(class);
    b.add_osd(osd as i32, weight, class, &path)
        .map_err(|e| format!("cannot place osd.{osd} in CRUSH: {e}"))?;
    Ok(Bytes::from(binary::encode(&b.build())))
}

/// Takes an OSD out of the hierarchy (nothing to do when it is not there).
pub fn remove_osd(t: &[u8], osd: u32) -> Result<Bytes, String> {
    let mut b = CrushBuilder::from(parse(t)?);
    let _ = b.remove_osd(osd as i32);
    Ok(Bytes::from(binary::encode(&b.build())))
}

/// Sets an OSD's CRUSH weight (16.16).
pub fn set_weight(t: &[u8], osd: u32, weight: u32) -> Result<Bytes, String> {
    let mut b = CrushBuilder::from(parse(t)?);
    b.set_weight(osd as i32, weight)
        .map_err(|e| format!("cannot reweight osd.{osd}: {e}"))?;
    Ok(Bytes::from(binary::encode(&b.build())))
}

/// Adds a replicated rule choosing `failure_domain`s under `root`, optionally of one device class.
pub fn add_rule(
    t: &[u8],
    name: &str,
    root: &str,
    failure_domain: &str,
    class: &str,
) -> Result<(Bytes, u32), String> {
    let mut b = CrushBuilder::from(parse(t)?);
    let class = (!class.is_empty()).then_some(class);
    let id = b
        .add_replicated_rule(name, root, failure_domain, class)
        .map_err(|e| format!("cannot create rule '{name}': {e}"))?;
    Ok((Bytes::from(binary::encode(&b.build())), id))
}

/// The id of the rule called `name`, if any.
pub fn rule_id(t: &[u8], name: &str) -> Option<u32> {
    binary::decode(t).ok()?.rule_by_name(name).map(|r| r.id)
}
