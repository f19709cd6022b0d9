//! Persisted structures of the block store and their versioned encodings.

use crate::{StoreError, Superblock};
use std::collections::BTreeMap;

/// Allocation unit of the block file.
pub(crate) const UNIT: u64 = 4096;
/// Largest checksummed chunk; object data is cut at multiples of this.
pub(crate) const CHUNK: u64 = 64 * 1024;
/// Version byte of object records.
pub(crate) const RECORD_VERSION: u8 = 1;
/// Version byte of the superblock value.
pub(crate) const SUPERBLOCK_VERSION: u8 = 1;
/// Version byte of the block-file label.
pub(crate) const LABEL_VERSION: u8 = 1;
/// Magic at the start of the block file.
pub(crate) const LABEL_MAGIC: &[u8; 16] = b"MERIDIAN-BLOCK\0\0";

const KIND_INLINE: u8 = 0;
const KIND_CHUNKS: u8 = 1;

/// Rounds up to a whole number of allocation units (in bytes).
pub(crate) fn round_up_unit(len: u64) -> u64 {
    len.div_ceil(UNIT) * UNIT
}

/// One stored chunk of an object: logical range `[idx*CHUNK, idx*CHUNK+len)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// Byte offset in the block file (multiple of `UNIT`).
    pub phys: u64,
    /// Stored bytes (1..=CHUNK); bytes past `len` but below the object size read as zeros.
    pub len: u32,
    /// blake3 of the `len` stored bytes.
    pub hash: [u8; 32],
}

impl Chunk {
    /// Bytes this chunk occupies in the block file.
    pub fn alloc_len(&self) -> u64 {
        round_up_unit(u64::from(self.len))
    }
}

/// Where an object's bytes live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ObjData {
    /// Stored in the record itself (small objects); length == object size.
    Inline(Vec<u8>),
    /// Chunk index -> chunk; missing chunks are holes (zeros).
    Chunks(BTreeMap<u64, Chunk>),
}

/// The decoded object record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ObjState {
    pub size: u64,
    pub data: ObjData,
}

impl ObjState {
    /// A new, empty object.
    pub fn empty() -> Self {
        ObjState {
            size: 0,
            data: ObjData::Inline(Vec::new()),
        }
    }
}

/// Encodes an object record (version 1). Inline data carries its blake3;
/// chunk maps are coalesced into extents of physically contiguous full chunks.
pub(crate) fn encode_record(st: &ObjState) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(RECORD_VERSION);
    match &st.data {
        ObjData::Inline(data) => {
            out.push(KIND_INLINE);
            out.extend_from_slice(&st.size.to_le_bytes());
            out.extend_from_slice(blake3::hash(data).as_bytes());
            out.extend_from_slice(data);
        }
        ObjData::Chunks(chunks) => {
            out.push(KIND_CHUNKS);
            out.extend_from_slice(&st.size.to_le_bytes());
            // (logical, phys, len, hashes)
            let mut extents: Vec<(u64, u64, u64, Vec<[u8; 32]>)> = Vec::new();
            for (&idx, c) in chunks {
                let logical = idx * CHUNK;
                if let Some(last) = extents.last_mut() {
                    let contiguous = last.0 + last.2 == logical
                        && last.2 % CHUNK == 0
                        && last.1 + last.2 == c.phys;
                    if contiguous {
                        last.2 += u64::from(c.len);
                        last.3.push(c.hash);
                        continue;
                    }
                }
                extents.push((logical, c.phys, u64::from(c.len), vec![c.hash]));
            }
            out.extend_from_slice(&(extents.len() as u32).to_le_bytes());
            for (logical, phys, len, hashes) in extents {
                out.extend_from_slice(&logical.to_le_bytes());
                out.extend_from_slice(&phys.to_le_bytes());
                out.extend_from_slice(&len.to_le_bytes());
                for h in hashes {
                    out.extend_from_slice(&h);
                }
            }
        }
    }
    out
}

/// Byte reader that reports truncation instead of panicking.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn hash(&mut self) -> Option<[u8; 32]> {
        self.take(32)?.try_into().ok()
    }
    fn rest(&mut self) -> &'a [u8] {
        let s = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        s
    }
}

/// Decoded inline data still has to be verified against this hash.
pub(crate) struct DecodedRecord {
    pub state: ObjState,
    /// blake3 of inline data as stored (None for chunked objects).
    pub inline_hash: Option<[u8; 32]>,
}

/// Decodes an object record, checking its structure (not the data checksums).
pub(crate) fn decode_record(
    what: &dyn Fn() -> String,
    raw: &[u8],
) -> Result<DecodedRecord, StoreError> {
    let bad = |reason: String| StoreError::BadRecord {
        what: what(),
        reason,
    };
    let trunc = || bad("record is truncated".to_string());
    let mut r = Reader { buf: raw, pos: 0 };
    let version = r.u8().ok_or_else(trunc)?;
    if version != RECORD_VERSION {
        return Err(StoreError::UnsupportedVersion {
            what: what(),
            found: u32::from(version),
            supported: u32::from(RECORD_VERSION),
        });
    }
    let kind = r.u8().ok_or_else(trunc)?;
    let size = r.u64().ok_or_else(trunc)?;
    match kind {
        KIND_INLINE => {
            let hash = r.hash().ok_or_else(trunc)?;
            let data = r.rest();
            if data.len() as u64 != size {
                return Err(bad(format!(
                    "inline data is {} bytes but the size says {size}",
                    data.len()
                )));
            }
            Ok(DecodedRecord {
                state: ObjState {
                    size,
                    data: ObjData::Inline(data.to_vec()),
                },
                inline_hash: Some(hash),
            })
        }
        KIND_CHUNKS => {
            let n = r.u32().ok_or_else(trunc)?;
            let mut chunks = BTreeMap::new();
            let mut next_free_logical = 0u64;
            for _ in 0..n {
                let logical = r.u64().ok_or_else(trunc)?;
                let phys = r.u64().ok_or_else(trunc)?;
                let len = r.u64().ok_or_else(trunc)?;
                if logical % CHUNK != 0 || phys % UNIT != 0 || len == 0 {
                    return Err(bad(format!(
                        "misaligned extent (logical {logical}, physical {phys}, length {len})"
                    )));
                }
                let end = logical
                    .checked_add(len)
                    .ok_or_else(|| bad("extent overflows".into()))?;
                if logical < next_free_logical || end > size {
                    return Err(bad(format!(
                        "extent [{logical}, {end}) overlaps another or passes the size {size}"
                    )));
                }
                next_free_logical = end.div_ceil(CHUNK) * CHUNK;
                let nchunks = len.div_ceil(CHUNK);
                for i in 0..nchunks {
                    let hash = r.hash().ok_or_else(trunc)?;
                    let clen = (len - i * CHUNK).min(CHUNK) as u32;
                    let cphys = phys
                        .checked_add(i * CHUNK)
                        .ok_or_else(|| bad("extent passes the end of the address space".into()))?;
                    chunks.insert(
                        logical / CHUNK + i,
                        Chunk {
                            phys: cphys,
                            len: clen,
                            hash,
                        },
                    );
                }
            }
            if !r.rest().is_empty() {
                return Err(bad("trailing bytes after the extent list".to_string()));
            }
            Ok(DecodedRecord {
                state: ObjState {
                    size,
                    data: ObjData::Chunks(chunks),
                },
                inline_hash: None,
            })
        }
        k => Err(bad(format!("unknown data kind {k}"))),
    }
}

/// Superblock as stored (JSON after a version byte).
#[derive(serde::Serialize, serde::Deserialize)]
struct SuperblockRecord {
    fsid: String,
    osd_id: u32,
    engine: String,
    format_version: u32,
    block_size_bytes: u64,
}

/// Encodes the superblock value.
pub(crate) fn encode_superblock(sb: &Superblock) -> Vec<u8> {
    let rec = SuperblockRecord {
        fsid: sb.fsid.clone(),
        osd_id: sb.osd_id,
        engine: sb.engine.clone(),
        format_version: sb.format_version,
        block_size_bytes: sb.block_size_bytes,
    };
    let mut out = vec![SUPERBLOCK_VERSION];
    // Serializing a plain struct of strings and integers cannot fail.
    out.extend_from_slice(&serde_json::to_vec(&rec).unwrap_or_default());
    out
}

/// Decodes the superblock value.
pub(crate) fn decode_superblock(raw: &[u8]) -> Result<Superblock, StoreError> {
    let what = || "superblock".to_string();
    let (&v, body) = raw.split_first().ok_or_else(|| StoreError::BadRecord {
        what: what(),
        reason: "empty".into(),
    })?;
    if v != SUPERBLOCK_VERSION {
        return Err(StoreError::UnsupportedVersion {
            what: what(),
            found: u32::from(v),
            supported: u32::from(SUPERBLOCK_VERSION),
        });
    }
    let rec: SuperblockRecord =
        serde_json::from_slice(body).map_err(|e| StoreError::BadRecord {
            what: what(),
            reason: e.to_string(),
        })?;
    Ok(Superblock {
        fsid: rec.fsid,
        osd_id: rec.osd_id,
        engine: rec.engine,
        format_version: rec.format_version,
        block_size_bytes: rec.block_size_bytes,
    })
}

/// Identity written in the first unit of the block file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Label {
    pub fsid: String,
    pub osd_id: u32,
    pub block_size_bytes: u64,
}

/// Encodes the label into one zero-padded unit.
pub(crate) fn encode_label(l: &Label) -> Vec<u8> {
    let mut out = Vec::with_capacity(UNIT as usize);
    out.extend_from_slice(LABEL_MAGIC);
    out.push(LABEL_VERSION);
    out.extend_from_slice(&(l.fsid.len() as u32).to_le_bytes());
    out.extend_from_slice(l.fsid.as_bytes());
    out.extend_from_slice(&l.osd_id.to_le_bytes());
    out.extend_from_slice(&l.block_size_bytes.to_le_bytes());
    let h = blake3::hash(&out);
    out.extend_from_slice(h.as_bytes());
    out.resize(UNIT as usize, 0);
    out
}

/// Decodes and verifies the label.
pub(crate) fn decode_label(raw: &[u8]) -> Result<Label, StoreError> {
    let bad = |reason: &str| StoreError::BadRecord {
        what: "block file label".to_string(),
        reason: reason.to_string(),
    };
    let mut r = Reader { buf: raw, pos: 0 };
    if r.take(16) != Some(&LABEL_MAGIC[..]) {
        return Err(bad("no Meridian label (wrong file, or not formatted)"));
    }
    let v = r.u8().ok_or_else(|| bad("truncated"))?;
    if v != LABEL_VERSION {
        return Err(StoreError::UnsupportedVersion {
            what: "block file label".to_string(),
            found: u32::from(v),
            supported: u32::from(LABEL_VERSION),
        });
    }
    let n = r.u32().ok_or_else(|| bad("truncated"))? as usize;
    let fsid = r.take(n).ok_or_else(|| bad("truncated"))?;
    let fsid = std::str::from_utf8(fsid)
        .map_err(|_| bad("fsid is not UTF-8"))?
        .to_string();
    let osd_id = r.u32().ok_or_else(|| bad("truncated"))?;
    let block_size_bytes = r.u64().ok_or_else(|| bad("truncated"))?;
    let body_end = r.pos;
    let h = r.hash().ok_or_else(|| bad("truncated"))?;
    if blake3::hash(&raw[..body_end]).as_bytes() != &h {
        return Err(bad("checksum mismatch"));
    }
    Ok(Label {
        fsid,
        osd_id,
        block_size_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(phys: u64, len: u32, tag: u8) -> Chunk {
        Chunk {
            phys,
            len,
            hash: [tag; 32],
        }
    }

    #[test]
    fn chunked_record_roundtrips_and_coalesces() {
        let mut m = BTreeMap::new();
        m.insert(0, chunk(4096, CHUNK as u32, 1));
        m.insert(1, chunk(4096 + CHUNK, CHUNK as u32, 2)); // contiguous: same extent
        m.insert(2, chunk(4096 + 2 * CHUNK, 100, 3)); // partial tail, still same extent
        m.insert(5, chunk(1 << 20, 5000, 4)); // after a hole
        let st = ObjState {
            size: 5 * CHUNK + 5000,
            data: ObjData::Chunks(m),
        };
        let enc = encode_record(&st);
        // 2 extents: header 14 bytes, 2 * 24 bytes, 4 hashes.
        assert_eq!(enc.len(), 14 + 2 * 24 + 4 * 32);
        let dec = decode_record(&|| "t".into(), &enc).unwrap();
        assert_eq!(dec.state, st);
        assert!(dec.inline_hash.is_none());
    }

    #[test]
    fn inline_record_roundtrips() {
        let st = ObjState {
            size: 3,
            data: ObjData::Inline(b"abc".to_vec()),
        };
        let dec = decode_record(&|| "t".into(), &encode_record(&st)).unwrap();
        assert_eq!(dec.state, st);
        assert_eq!(dec.inline_hash, Some(*blake3::hash(b"abc").as_bytes()));
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let st = ObjState {
            size: CHUNK + 1,
            data: ObjData::Chunks(
                [(0, chunk(4096, CHUNK as u32, 1)), (1, chunk(0x20000, 1, 2))]
                    .into_iter()
                    .collect(),
            ),
        };
        let enc = encode_record(&st);
        for cut in 0..enc.len() {
            assert!(decode_record(&|| "t".into(), &enc[..cut]).is_err());
        }
        let mut v = enc.clone();
        v[0] = 9;
        assert!(matches!(
            decode_record(&|| "t".into(), &v),
            Err(StoreError::UnsupportedVersion { .. })
        ));
    }

    #[test]
    fn label_roundtrip_and_damage() {
        let l = Label {
            fsid: "abc".into(),
            osd_id: 7,
            block_size_bytes: 1 << 30,
        };
        let mut enc = encode_label(&l);
        assert_eq!(enc.len(), UNIT as usize);
        assert_eq!(decode_label(&enc).unwrap(), l);
        enc[20] ^= 1;
        assert!(decode_label(&enc).is_err());
    }
}
