//! Pool compression settings, named as Ceph names them
//! (`osd pool set POOL compression_algorithm lz4`): the monitor validates
//! them into the pool's options, and the S3 gateway reads them from the map
//! to decide how it stores object data in the pool. Compression happens in
//! the gateway, before encryption, so encrypted objects compress too (an OSD
//! only ever sees sealed bytes, which do not compress).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Pool option: the algorithm (`lz4`, `zstd`, or `none`: no compression).
pub const ALGORITHM: &str = "compression_algorithm";
/// Pool option: when to compress (`none`, `passive`, `aggressive`, `force`).
pub const MODE: &str = "compression_mode";
/// Pool option: keep a compressed stripe only if it is at most this
/// fraction of the original (Ceph's `compression_required_ratio`).
pub const REQUIRED_RATIO: &str = "compression_required_ratio";
/// Every compression option a pool takes.
pub const OPTIONS: [&str; 3] = [ALGORITHM, MODE, REQUIRED_RATIO];
/// Ceph's default required ratio: compressing must save at least 1/8.
pub const DEFAULT_REQUIRED_RATIO: f64 = 0.875;

/// A compression algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// LZ4: fast, modest ratio (the default when only a mode is set).
    Lz4,
    /// Zstandard (level 1): better ratio, more CPU.
    Zstd,
}

impl Algorithm {
    /// The option value.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Lz4 => "lz4",
            Algorithm::Zstd => "zstd",
        }
    }
}

/// When data is compressed (BlueStore's modes, with the hint taken from the
/// object's Content-Type and Content-Encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Never.
    #[default]
    None,
    /// Only data hinted compressible (text, JSON, XML, ...).
    Passive,
    /// Everything not hinted incompressible (images, video, archives, ...).
    Aggressive,
    /// Everything.
    Force,
}

impl Mode {
    /// The option value.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Passive => "passive",
            Mode::Aggressive => "aggressive",
            Mode::Force => "force",
        }
    }
}

/// What the writer knows about how well its data compresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hint {
    /// Nothing.
    #[default]
    Unknown,
    /// Text-like data.
    Compressible,
    /// Already compressed (media, archives, Content-Encoding set).
    Incompressible,
}

/// A pool's compression settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolCompression {
    /// Algorithm (None: not set, so `lz4` if a mode asks for compression).
    pub algorithm: Option<Algorithm>,
    /// `compression_algorithm none`: nothing is compressed, whatever the mode.
    pub disabled: bool,
    /// When to compress.
    pub mode: Mode,
    /// Largest compressed/original ratio worth keeping.
    pub required_ratio: f64,
}

impl Default for PoolCompression {
    fn default() -> Self {
        PoolCompression {
            algorithm: None,
            disabled: false,
            mode: Mode::None,
            required_ratio: DEFAULT_REQUIRED_RATIO,
        }
    }
}

impl PoolCompression {
    /// The settings in a pool's options (values were validated when set;
    /// anything unreadable counts as unset).
    pub fn from_options(options: &HashMap<String, String>) -> Self {
        let mut c = PoolCompression::default();
        match options.get(ALGORITHM).map(|v| parse_algorithm(v)) {
            Some(Ok(Some(a))) => c.algorithm = Some(a),
            Some(Ok(None)) => c.disabled = true,
            _ => {}
        }
        if let Some(Ok(m)) = options.get(MODE).map(|v| parse_mode(v)) {
            c.mode = m;
        }
        if let Some(Ok(r)) = options.get(REQUIRED_RATIO).map(|v| parse_ratio(v)) {
            c.required_ratio = r;
        }
        c
    }

    /// The algorithm to compress data with `hint` under these settings, if any.
    pub fn decide(&self, hint: Hint) -> Option<Algorithm> {
        let alg = self.algorithm.unwrap_or(Algorithm::Lz4);
        let wanted = !self.disabled
            && match self.mode {
                Mode::None => false,
                Mode::Passive => hint == Hint::Compressible,
                Mode::Aggressive => hint != Hint::Incompressible,
                Mode::Force => true,
            };
        wanted.then_some(alg)
    }

    /// Whether `compressed` bytes are worth keeping instead of `original`.
    pub fn worth_keeping(&self, compressed: usize, original: usize) -> bool {
        compressed < original && (compressed as f64) <= self.required_ratio * original as f64
    }
}

/// Checks a compression option; returns the value to store.
pub fn validate(key: &str, value: &str) -> Result<String, String> {
    match key {
        ALGORITHM => {
            parse_algorithm(value)?;
            Ok(value.to_ascii_lowercase())
        }
        MODE => parse_mode(value).map(|m| m.as_str().to_string()),
        REQUIRED_RATIO => parse_ratio(value).map(|r| r.to_string()),
        _ => Err(format!("{key:?} is not a compression option")),
    }
}

fn parse_algorithm(v: &str) -> Result<Option<Algorithm>, String> {
    match v.to_ascii_lowercase().as_str() {
        "lz4" => Ok(Some(Algorithm::Lz4)),
        "zstd" => Ok(Some(Algorithm::Zstd)),
        "none" => Ok(None),
        "snappy" | "zlib" => Err(format!(
            "compression_algorithm {v:?} is not supported: use lz4 or zstd"
        )),
        _ => Err(format!(
            "unknown compression_algorithm {v:?}: use lz4, zstd or none"
        )),
    }
}

fn parse_mode(v: &str) -> Result<Mode, String> {
    match v.to_ascii_lowercase().as_str() {
        "none" => Ok(Mode::None),
        "passive" => Ok(Mode::Passive),
        "aggressive" => Ok(Mode::Aggressive),
        "force" => Ok(Mode::Force),
        _ => Err(format!(
            "unknown compression_mode {v:?}: use none, passive, aggressive or force"
        )),
    }
}

fn parse_ratio(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(r) if r > 0.0 && r <= 1.0 => Ok(r),
        _ => Err(format!(
            "compression_required_ratio must be a number in (0, 1], not {v:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn modes_follow_bluestore() {
        use Hint::*;
        let with =
            |mode: &str| PoolCompression::from_options(&opts(&[(ALGORITHM, "zstd"), (MODE, mode)]));
        let none = with("none");
        let passive = with("passive");
        let aggressive = with("aggressive");
        let force = with("force");
        for h in [Unknown, Compressible, Incompressible] {
            assert_eq!(none.decide(h), None);
            assert_eq!(force.decide(h), Some(Algorithm::Zstd));
        }
        assert_eq!(passive.decide(Compressible), Some(Algorithm::Zstd));
        assert_eq!(passive.decide(Unknown), None);
        assert_eq!(aggressive.decide(Unknown), Some(Algorithm::Zstd));
        assert_eq!(aggressive.decide(Incompressible), None);
        // A mode alone compresses with lz4; an algorithm alone does nothing.
        let mode_only = PoolCompression::from_options(&opts(&[(MODE, "force")]));
        assert_eq!(mode_only.decide(Unknown), Some(Algorithm::Lz4));
        let alg_only = PoolCompression::from_options(&opts(&[(ALGORITHM, "lz4")]));
        assert_eq!(alg_only.decide(Compressible), None);
        // Algorithm `none` turns compression off, as in Ceph.
        let off = PoolCompression::from_options(&opts(&[(ALGORITHM, "none"), (MODE, "force")]));
        assert_eq!(off.decide(Compressible), None);
    }

    #[test]
    fn bad_values_are_refused_with_the_choices() {
        assert_eq!(validate(ALGORITHM, "LZ4").as_deref(), Ok("lz4"));
        assert_eq!(validate(MODE, "Aggressive").as_deref(), Ok("aggressive"));
        assert!(
            validate(ALGORITHM, "snappy")
                .unwrap_err()
                .contains("lz4 or zstd")
        );
        assert!(
            validate(ALGORITHM, "gzip")
                .unwrap_err()
                .contains("lz4, zstd or none")
        );
        assert!(validate(MODE, "always").unwrap_err().contains("passive"));
        for bad in ["0", "1.5", "-1", "x"] {
            assert!(validate(REQUIRED_RATIO, bad).is_err(), "{bad}");
        }
        assert_eq!(validate(REQUIRED_RATIO, "0.5").as_deref(), Ok("0.5"));
    }

    #[test]
    fn a_stripe_is_kept_compressed_only_when_it_saves_enough() {
        let c = PoolCompression::default();
        assert!(c.worth_keeping(100, 1000));
        assert!(c.worth_keeping(875, 1000));
        assert!(!c.worth_keeping(876, 1000));
        assert!(!c.worth_keeping(1000, 1000));
        assert!(!c.worth_keeping(0, 0));
    }
}
