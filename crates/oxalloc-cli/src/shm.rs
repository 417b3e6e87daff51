//! Reader for the live statistics file the library keeps when `OXALLOC_STATS_SHM=/path` is set.
//!
//! Layout (little-endian `u64`s at offset 0): `[0]` magic `"OXALLOC1"`, `[1]` version (1),
//! `[2]` pid, `[3]` update sequence number, `[4]` mapped bytes, `[5]` in-use bytes, `[6]` peak
//! in-use bytes, `[7]` purged bytes (cumulative), `[8]` cached dirty bytes, `[9]` huge
//! allocations, `[10]` segment count (at most 1000); from byte 128, one record of 4 `u64` per
//! segment: base address, used slices, free dirty slices, free purged slices. A segment is
//! 4 MiB, 64 slices of 64 KiB; slice 0 holds the segment's metadata.
//!
//! The writer updates it from its slow paths while we read, so a read can be torn: we read
//! the whole file, read the sequence number again, and retry while it moved.

use std::fs;
use std::path::Path;

pub const MAGIC: u64 = u64::from_le_bytes(*b"OXALLOC1");
pub const SEGMENT_BYTES: u64 = 4 << 20;
pub const SLICES_PER_SEGMENT: u64 = 64;
const HEADER_WORDS: usize = 11;
const RECORDS_OFFSET: usize = 128;
const MAX_SEGMENTS: usize = 1000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub base: u64,
    pub used_slices: u64,
    pub free_dirty_slices: u64,
    pub free_purged_slices: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShmSnapshot {
    pub pid: u64,
    pub seq: u64,
    pub mapped_bytes: u64,
    pub in_use_bytes: u64,
    pub peak_in_use_bytes: u64,
    pub purged_bytes: u64,
    pub cached_dirty_bytes: u64,
    pub huge_count: u64,
    pub segments: Vec<Segment>,
}

fn word(buf: &[u8], i: usize) -> Option<u64> {
    let b = buf.get(i * 8..i * 8 + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

/// Decodes one image of the file; `None` if it is not (yet) a valid version-1 image.
pub fn decode(buf: &[u8]) -> Option<ShmSnapshot> {
    if word(buf, 0)? != MAGIC || word(buf, 1)? != 1 {
        return None;
    }
    let h: Vec<u64> = (0..HEADER_WORDS)
        .map(|i| word(buf, i))
        .collect::<Option<_>>()?;
    let n = (h[10] as usize).min(MAX_SEGMENTS);
    let segments = (0..n)
        .map_while(|i| {
            let w = RECORDS_OFFSET / 8 + i * 4;
            Some(Segment {
                base: word(buf, w)?,
                used_slices: word(buf, w + 1)?,
                free_dirty_slices: word(buf, w + 2)?,
                free_purged_slices: word(buf, w + 3)?,
            })
        })
        .collect();
    Some(ShmSnapshot {
        pid: h[2],
        seq: h[3],
        mapped_bytes: h[4],
        in_use_bytes: h[5],
        peak_in_use_bytes: h[6],
        purged_bytes: h[7],
        cached_dirty_bytes: h[8],
        huge_count: h[9],
        segments,
    })
}

/// Reads a consistent snapshot, retrying a few times if the writer moved under us.
pub fn read(path: &Path) -> Option<ShmSnapshot> {
    let mut last = None;
    for _ in 0..8 {
        let buf = fs::read(path).ok()?;
        let snap = decode(&buf)?;
        let again = fs::read(path).ok().and_then(|b| word(&b, 3));
        if again == Some(snap.seq) {
            return Some(snap);
        }
        last = Some(snap);
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn image(words: &[u64], segs: &[[u64; 4]]) -> Vec<u8> {
        let mut buf = vec![0u8; 64 << 10];
        for (i, w) in words.iter().enumerate() {
            buf[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        for (i, s) in segs.iter().enumerate() {
            for (j, w) in s.iter().enumerate() {
                let o = RECORDS_OFFSET + (i * 4 + j) * 8;
                buf[o..o + 8].copy_from_slice(&w.to_le_bytes());
            }
        }
        buf
    }

    #[test]
    fn decodes_header_and_segments() {
        let buf = image(
            &[
                MAGIC,
                1,
                42,
                7,
                8 << 20,
                3 << 20,
                5 << 20,
                1 << 20,
                65536,
                0,
                2,
            ],
            &[[0x7f00_0000_0000, 10, 3, 50], [0x7f00_0040_0000, 63, 0, 0]],
        );
        let s = decode(&buf).unwrap();
        assert_eq!(s.pid, 42);
        assert_eq!(s.in_use_bytes, 3 << 20);
        assert_eq!(s.segments.len(), 2);
        assert_eq!(s.segments[0].free_purged_slices, 50);
        assert_eq!(s.segments[1].used_slices, 63);
    }

    #[test]
    fn rejects_wrong_magic_and_short_files() {
        assert!(decode(&[0u8; 16]).is_none());
        let mut buf = image(&[MAGIC, 2], &[]);
        assert!(decode(&buf).is_none());
        buf.truncate(40);
        assert!(decode(&buf).is_none());
    }
}
