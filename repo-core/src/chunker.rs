//! Content-defined chunking: FastCDC v2020 with a gear table seeded from the repository key.
//!
//! Cut points depend only on the bytes from the previous cut, so chunking a stream buffer by
//! buffer gives exactly the cut points of chunking it whole; [`Chunker::next_cut`] says when
//! it needs more bytes to decide. The `fastcdc` version is pinned and a golden test fixes the
//! cut points for a known input and seed: a drift would silently break dedup across upgrades.

use std::borrow::Cow;

use fastcdc::v2020::{cut_gear, get_gear_with_seed, select_masks, Normalization};

use crate::config::ChunkerParams;

/// A configured chunker.
pub struct Chunker {
    params: ChunkerParams,
    gear: Cow<'static, [u64]>,
    gear_ls: Cow<'static, [u64]>,
    mask_s: u64,
    mask_l: u64,
}

impl Chunker {
    /// A chunker with these sizes and gear seed (see [`crate::MasterKey::chunker_seed`]).
    pub fn new(params: ChunkerParams, seed: u64) -> Self {
        let (mask_s, mask_l) = select_masks(params.avg_size as usize, Normalization::Level1);
        let (gear, gear_ls) = get_gear_with_seed(seed);
        Chunker {
            params,
            gear,
            gear_ls,
            mask_s,
            mask_l,
        }
    }

    /// Largest chunk this chunker cuts.
    pub fn max_size(&self) -> usize {
        self.params.max_size as usize
    }

    /// Length of the chunk that starts at `data[0]`, or `None` when `data` may continue
    /// (`eof` false) and is too short to decide. An empty `data` at EOF gives `None`.
    pub fn next_cut(&self, data: &[u8], eof: bool) -> Option<usize> {
        if data.is_empty() {
            return None;
        }
        let window = &data[..data.len().min(self.max_size())];
        let (_, len) = cut_gear(
            window,
            self.params.min_size as usize,
            self.params.avg_size as usize,
            self.params.max_size as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        // A cut at the very end of a short window may just be "ran out of data".
        if len == data.len() && !eof && data.len() < self.max_size() {
            return None;
        }
        Some(len)
    }

    /// All chunk lengths of a complete buffer (tests and benches).
    pub fn cut_all(&self, mut data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        while let Some(n) = self.next_cut(data, true) {
            out.push(n);
            data = &data[n..];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        // xorshift64*: deterministic bytes with no dependency on rand's algorithms.
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect()
    }

    fn small() -> ChunkerParams {
        ChunkerParams {
            min_size: 4096,
            avg_size: 16384,
            max_size: 65536,
        }
    }

    #[test]
    fn streaming_equals_whole() {
        let data = pseudo_random(1 << 20, 7);
        let c = Chunker::new(small(), 12345);
        let whole = c.cut_all(&data);
        assert_eq!(whole.iter().sum::<usize>(), data.len());
        // Feed in odd-sized pieces, carrying the undecided tail.
        let mut got = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        for piece in data.chunks(10_007) {
            buf.extend_from_slice(piece);
            let mut start = 0;
            while let Some(n) = c.next_cut(&buf[start..], false) {
                got.push(n);
                start += n;
            }
            buf.drain(..start);
        }
        while let Some(n) = c.next_cut(&buf, true) {
            got.push(n);
            buf.drain(..n);
        }
        assert_eq!(got, whole);
    }

    #[test]
    fn seed_changes_cut_points() {
        let data = pseudo_random(1 << 20, 9);
        let a = Chunker::new(small(), 1).cut_all(&data);
        let b = Chunker::new(small(), 2).cut_all(&data);
        assert_ne!(a, b);
        assert!(a.iter().all(|&n| n <= 65536));
    }

    /// Golden vector: these cut points must never change, or dedup against existing
    /// repositories breaks. If this fails after a dependency update, the update is wrong.
    #[test]
    fn golden_cut_points() {
        let data = pseudo_random(1 << 20, 2026);
        let cuts = Chunker::new(small(), 0x00c0_ffee_d00d_f00d).cut_all(&data);
        let mut offsets = Vec::new();
        let mut at = 0;
        for n in &cuts {
            at += n;
            offsets.push(at);
        }
        let golden: &str = include_str!("../../tests/golden/chunker-cuts.txt");
        let expected: Vec<usize> = golden
            .split_whitespace()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(offsets, expected);
    }
}
