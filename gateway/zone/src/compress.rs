//! Stripe codecs for pool compression (see `meridian_common::compression`
//! for the settings and when they apply). A stripe is compressed as one
//! block: LZ4 block format, or a Zstandard frame at level 1 (fast, and
//! already well ahead of LZ4 in ratio on text).

use meridian_common::compression::Algorithm;

/// Zstandard level: the fastest, so a 4 MiB stripe costs a few ms of CPU.
const ZSTD_LEVEL: i32 = 1;

/// Compresses one stripe.
pub fn compress(alg: Algorithm, plain: &[u8]) -> std::result::Result<Vec<u8>, String> {
    match alg {
        Algorithm::Lz4 => Ok(lz4_flex::block::compress(plain)),
        Algorithm::Zstd => {
            zstd::bulk::compress(plain, ZSTD_LEVEL).map_err(|e| format!("zstd: {e}"))
        }
    }
}

/// Decompresses one stripe that must come out exactly `len` bytes long.
pub fn decompress(
    alg: Algorithm,
    stored: &[u8],
    len: usize,
) -> std::result::Result<Vec<u8>, String> {
    let out = match alg {
        Algorithm::Lz4 => {
            lz4_flex::block::decompress(stored, len).map_err(|e| format!("lz4: {e}"))?
        }
        Algorithm::Zstd => zstd::bulk::decompress(stored, len).map_err(|e| format!("zstd: {e}"))?,
    };
    if out.len() != len {
        return Err(format!(
            "decompressed to {} bytes, expected {len}",
            out.len()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_algorithms_round_trip_and_shrink_text() {
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("line {i} of a log file\n").into_bytes())
            .collect();
        for alg in [Algorithm::Lz4, Algorithm::Zstd] {
            let c = compress(alg, &text).unwrap();
            assert!(
                c.len() * 4 < text.len(),
                "{alg:?}: {} of {}",
                c.len(),
                text.len()
            );
            assert_eq!(decompress(alg, &c, text.len()).unwrap(), text);
            // A wrong length or a damaged stripe is an error, never wrong data.
            assert!(decompress(alg, &c, text.len() + 1).is_err());
            let mut bad = c.clone();
            bad.truncate(c.len() / 2);
            assert!(decompress(alg, &bad, text.len()).is_err());
        }
    }
}
