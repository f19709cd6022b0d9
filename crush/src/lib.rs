//! Ceph-compatible CRUSH placement for Meridian: pure functions, no I/O.
//!
//! For the same map, rule and input this crate computes exactly the OSDs
//! Ceph's `crush_do_rule` computes (rjenkins1 hashing, straw2 buckets with
//! Ceph's fixed-point `crush_ln`, Ceph's tunables), using integer
//! arithmetic only, so every machine agrees. Golden vectors recorded with
//! Debian's `crushtool`/`osdmaptool` (see `testdata/regen.sh`) pin this.
//!
//! - [`hash`]: rjenkins hashes (`crush_hash32_*`, `ceph_str_hash_rjenkins`).
//! - [`ln`]: the fixed-point logarithm behind straw2 draws.
//! - [`CrushMap`] / [`CrushMap::do_rule`]: the map model and the mapper.
//! - [`CrushBuilder`]: monitor-style edits (`ceph osd crush add` & co.),
//!   including device-class shadow trees with Ceph's ids.
//! - [`text`]: crushtool's text format (`crushtool -c` / `-d`).
//! - [`binary`]: Ceph's binary map encoding (lossless; `crushtool -i`).
//! - [`pg`]: object name -> PG seed -> CRUSH input (`raw_pg_to_pps`).

#![deny(missing_docs)]

pub mod binary;
pub mod builder;
pub mod hash;
pub mod ln;
pub mod map;
mod mapper;
pub mod pg;
pub mod text;

pub use builder::{CrushBuilder, DEFAULT_ROOT, DEFAULT_TYPES};
pub use hash::{
    ceph_str_hash_rjenkins, crush_hash32, crush_hash32_2, crush_hash32_3, crush_hash32_4,
    crush_hash32_5,
};
pub use map::{
    Bucket, CRUSH_ITEM_NONE, CrushMap, Device, Rule, RuleStep, RuleType, Tunables, WEIGHT_ONE,
};
pub use pg::{PgPlacement, ceph_stable_mod, hash_key, object_to_pg, pg_num_mask, raw_pg_to_pps};

/// Everything that can go wrong parsing or editing a map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrushError {
    /// The text map does not follow crushtool's grammar.
    #[error("crush map line {line}: {message}")]
    Parse {
        /// 1-based line of the offending token.
        line: usize,
        /// What was wrong.
        message: String,
    },
    /// A binary map is malformed.
    #[error("crush map binary at byte {offset}: {message}")]
    Decode {
        /// Byte offset where decoding stopped.
        offset: usize,
        /// What was wrong.
        message: String,
    },
    /// A bucket uses an algorithm other than straw2.
    #[error("bucket {bucket}: algorithm '{alg}' is not supported (only straw2)")]
    UnsupportedBucketAlg {
        /// Bucket name.
        bucket: String,
        /// The algorithm named in the map.
        alg: String,
    },
    /// A bucket uses a hash other than rjenkins1 (0).
    #[error("bucket {bucket}: hash '{hash}' is not supported (only 0 / rjenkins1)")]
    UnsupportedHash {
        /// Bucket name.
        bucket: String,
        /// The hash named in the map.
        hash: String,
    },
    /// A rule or tunable asks for more work than placement can finish
    /// (every PG's placement would take minutes, wedging the monitors).
    #[error("{what} is {value}, above the limit of {limit}")]
    OverLimit {
        /// The tunable or rule step.
        what: String,
        /// Its value.
        value: i64,
        /// The largest accepted value.
        limit: i64,
    },
    /// A Ceph feature this crate deliberately does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A weight could not be read as a number.
    #[error("invalid weight '{0}'")]
    InvalidWeight(String),
    /// A weight exceeds Ceph's limits.
    #[error("weight out of range: {0}")]
    WeightOutOfRange(String),
    /// A name is not `[-_.0-9a-zA-Z]+`.
    #[error("invalid name '{0}' (allowed: [-_.0-9a-zA-Z]+)")]
    InvalidName(String),
    /// A name is already used by another item or rule.
    #[error("name '{0}' is already in use")]
    DuplicateName(String),
    /// Two buckets claim the same id.
    #[error("duplicate bucket id {0}")]
    DuplicateBucketId(i32),
    /// Bucket ids must be negative.
    #[error("invalid bucket id {0}")]
    InvalidBucketId(i32),
    /// Device ids must be non-negative.
    #[error("invalid device id {0}")]
    InvalidDeviceId(i32),
    /// No bucket with this id.
    #[error("no bucket with id {0}")]
    NoSuchBucket(i32),
    /// No device (OSD) with this id in the map.
    #[error("osd.{0} is not in the crush map")]
    NoSuchDevice(i32),
    /// The device is already placed in the hierarchy.
    #[error("osd.{0} is already in the crush map")]
    DeviceExists(i32),
    /// No rule with this name.
    #[error("no rule named '{0}'")]
    NoSuchRule(String),
    /// A type name that the map does not define.
    #[error("unknown type '{0}'")]
    UnknownType(String),
    /// An item name that the map does not define.
    #[error("unknown item '{0}'")]
    UnknownItem(String),
    /// A device class that the map does not know.
    #[error("unknown device class '{0}'")]
    UnknownClass(String),
    /// A location names a device where a bucket is needed.
    #[error("'{0}' is not a bucket")]
    NotABucket(String),
    /// A location names an existing bucket of a different type.
    #[error("bucket {bucket} has type '{actual}', not '{expected}'")]
    TypeMismatch {
        /// Bucket name.
        bucket: String,
        /// Type the location asked for.
        expected: String,
        /// Type the bucket has.
        actual: String,
    },
    /// Linking would make a bucket its own ancestor.
    #[error("linking into {0} would create a cycle")]
    Cycle(String),
    /// The location names no bucket the OSD could be placed in.
    #[error("no location given for osd.{0}")]
    NoLocation(i32),
    /// The OSD is bound to another class; Ceph requires removing it first.
    #[error("osd.{device} already has device class '{class}'")]
    ClassAlreadySet {
        /// OSD id.
        device: i32,
        /// Its current class.
        class: String,
    },
    /// A class-restricted rule over a root with no devices of that class.
    #[error("root {root} has no devices with class {class}")]
    NoClassInRoot {
        /// Root name.
        root: String,
        /// Class name.
        class: String,
    },
}
