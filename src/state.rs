//! Per-model state shared by every worker thread: one shared-data entry, [`TABLE_KEY`], holds
//! every model's breaker, latency EWMA and in-flight attempts, keyed by **model name** (a
//! configuration that keeps a model keeps its state; one that drops it leaves its entry
//! untouched for any VM still running the old configuration). This module is the pure part:
//! the codec and the arithmetic. The glue ([`crate::filter::state`]) reads the table once per
//! request and updates one model's entry with a CAS loop ([`crate::counter::cas_update`]).
//!
//! Layout (little-endian): version byte 1, then per model `u16` name length, the name,
//! `failures u32`, `open_until_ms u64`, `ewma_ms u32`, `samples u32`, `in_flight u32`.
//! Anything malformed reads as an empty table (every breaker closed, no samples, nothing in
//! flight): the worst case of a corrupt entry is one cold start, never a refused request.
//!
//! Why one entry rather than one per model (`model_workers.model.<name>`): routing needs every
//! model of a worker, so per-model entries cost one host call per model per request instead of
//! one; the price of one entry is CAS contention between attempts on different models, which
//! is a retry of a sub-microsecond read-modify-write (measured in the micro-benchmark).

use crate::cooldown::Breaker;

/// The shared-data key of the table (one per Envoy process and `vm_id`).
pub const TABLE_KEY: &str = "model_workers.models";
const VERSION: u8 = 1;
const FIXED: usize = 4 + 8 + 4 + 4 + 4;
/// Entries kept at most (models of old configurations included); beyond, idle entries of
/// models unknown to the writer are dropped first.
pub const MAX_ENTRIES: usize = 1024;

/// One model's shared state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelState {
    pub breaker: Breaker,
    /// Smoothed time to first byte (non-stream: response headers; stream: first event), ms.
    pub ewma_ms: u32,
    /// Samples folded into `ewma_ms` (saturating): 0 = never measured.
    pub samples: u32,
    /// Attempts started and not yet ended, process-wide.
    pub in_flight: u32,
}

/// The EWMA's weight of a new sample: 1/`EWMA_DIV` (0.25: a step change is 90 % absorbed after
/// 8 samples, one outlier moves the mean by a quarter of its excess).
pub const EWMA_DIV: u64 = 4;

impl ModelState {
    /// Fold one time-to-first-byte sample in. The first sample is taken as it is.
    pub fn add_sample(&mut self, ms: u64) {
        let ms = ms.min(u64::from(u32::MAX));
        let next = if self.samples == 0 {
            ms
        } else {
            let prev = u64::from(self.ewma_ms);
            // prev + (ms - prev) / DIV in integers, the step rounded away from prev: a
            // constant input is reached exactly (no integer dead band around it).
            if ms >= prev {
                prev + (ms - prev).div_ceil(EWMA_DIV)
            } else {
                prev - (prev - ms).div_ceil(EWMA_DIV)
            }
        };
        self.ewma_ms = u32::try_from(next).unwrap_or(u32::MAX);
        self.samples = self.samples.saturating_add(1);
    }
}

/// The decoded table: `(name, state)` in stored order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub entries: Vec<(String, ModelState)>,
}

impl Table {
    pub fn decode(bytes: Option<&[u8]>) -> Table {
        let mut entries = Vec::new();
        let Some(b) = bytes else { return Table { entries } };
        let Some((&VERSION, mut rest)) = b.split_first() else { return Table { entries } };
        while !rest.is_empty() {
            let Some((name, state, tail)) = decode_entry(rest) else { return Table::default() };
            entries.push((name, state));
            rest = tail;
        }
        Table { entries }
    }

    pub fn encode(&self) -> Vec<u8> {
        let size: usize = self.entries.iter().map(|(n, _)| 2 + n.len() + FIXED).sum();
        let mut out = Vec::with_capacity(1 + size);
        out.push(VERSION);
        for (name, s) in &self.entries {
            let len = u16::try_from(name.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(name.as_bytes().get(..usize::from(len)).unwrap_or_default());
            out.extend_from_slice(&s.breaker.failures.to_le_bytes());
            out.extend_from_slice(&s.breaker.open_until_ms.to_le_bytes());
            out.extend_from_slice(&s.ewma_ms.to_le_bytes());
            out.extend_from_slice(&s.samples.to_le_bytes());
            out.extend_from_slice(&s.in_flight.to_le_bytes());
        }
        out
    }

    pub fn get(&self, name: &str) -> Option<&ModelState> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }

    /// `name`'s entry, added (default state) when missing. When the table is full, idle
    /// entries (nothing in flight) not in `keep` are dropped first.
    pub fn entry(&mut self, name: &str, keep: &dyn Fn(&str) -> bool) -> Option<&mut ModelState> {
        if let Some(i) = self.entries.iter().position(|(n, _)| n == name) {
            return self.entries.get_mut(i).map(|(_, s)| s);
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.retain(|(n, s)| keep(n) || s.in_flight > 0);
            if self.entries.len() >= MAX_ENTRIES {
                return None;
            }
        }
        self.entries.push((name.to_string(), ModelState::default()));
        self.entries.last_mut().map(|(_, s)| s)
    }
}

fn decode_entry(b: &[u8]) -> Option<(String, ModelState, &[u8])> {
    let (len, b) = take::<2>(b)?;
    let len = usize::from(u16::from_le_bytes(len));
    let name = std::str::from_utf8(b.get(..len)?).ok()?.to_string();
    let b = b.get(len..)?;
    let (failures, b) = take::<4>(b)?;
    let (until, b) = take::<8>(b)?;
    let (ewma, b) = take::<4>(b)?;
    let (samples, b) = take::<4>(b)?;
    let (in_flight, b) = take::<4>(b)?;
    let state = ModelState {
        breaker: Breaker { failures: u32::from_le_bytes(failures), open_until_ms: u64::from_le_bytes(until) },
        ewma_ms: u32::from_le_bytes(ewma),
        samples: u32::from_le_bytes(samples),
        in_flight: u32::from_le_bytes(in_flight),
    };
    Some((name, state, b))
}

fn take<const N: usize>(b: &[u8]) -> Option<([u8; N], &[u8])> {
    let head = <[u8; N]>::try_from(b.get(..N)?).ok()?;
    Some((head, b.get(N..)?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn ewma_first_sample_then_quarter_steps() {
        let mut s = ModelState::default();
        s.add_sample(100);
        assert_eq!((s.ewma_ms, s.samples), (100, 1));
        s.add_sample(200); // 100 + 100/4
        assert_eq!(s.ewma_ms, 125);
        s.add_sample(125);
        assert_eq!(s.ewma_ms, 125);
        s.add_sample(0); // 125 − ⌈125/4⌉
        assert_eq!(s.ewma_ms, 93);
        // A step change is absorbed: 8 samples of 1000 from 10 get within 10 % of 1000.
        let mut s = ModelState::default();
        s.add_sample(10);
        for _ in 0..8 {
            s.add_sample(1000);
        }
        assert!(s.ewma_ms > 900 && s.ewma_ms <= 1000, "{}", s.ewma_ms);
        // Converges exactly on a constant (no rounding drift).
        for _ in 0..50 {
            s.add_sample(1000);
        }
        assert_eq!(s.ewma_ms, 1000);
        // Saturates instead of wrapping.
        let mut s = ModelState { ewma_ms: u32::MAX, samples: u32::MAX, ..Default::default() };
        s.add_sample(u64::MAX);
        assert_eq!((s.ewma_ms, s.samples), (u32::MAX, u32::MAX));
    }

    #[test]
    fn codec_roundtrip() {
        let t = Table {
            entries: vec![
                ("a".into(), ModelState::default()),
                (
                    "ünï/côde".into(),
                    ModelState {
                        breaker: Breaker { failures: 3, open_until_ms: 1_795_000_000_123 },
                        ewma_ms: 42,
                        samples: 7,
                        in_flight: 9,
                    },
                ),
            ],
        };
        let bytes = t.encode();
        assert_eq!(bytes.len(), 1 + (2 + 1 + FIXED) + (2 + "ünï/côde".len() + FIXED));
        assert_eq!(Table::decode(Some(&bytes)), t);
        assert_eq!(Table::decode(Some(&bytes)).get("ünï/côde").unwrap().in_flight, 9);
        assert_eq!(Table::decode(None), Table::default());
        assert_eq!(Table::decode(Some(&[])), Table::default());
        assert_eq!(Table::decode(Some(&Table::default().encode())), Table::default());
    }

    #[test]
    fn malformed_reads_as_empty() {
        let t = Table { entries: vec![("a".into(), ModelState { in_flight: 1, ..Default::default() })] };
        let bytes = t.encode();
        for cut in 1..bytes.len() {
            assert_eq!(Table::decode(Some(&bytes[..cut])), Table::default(), "cut at {cut}");
        }
        let mut wrong = bytes.clone();
        wrong[0] = 2;
        assert_eq!(Table::decode(Some(&wrong)), Table::default(), "unknown version");
        // The old breaker table's bytes (12 per model, no version) are not misread.
        assert_eq!(Table::decode(Some(&[0u8; 24])), Table::default());
    }

    #[test]
    fn entries_are_added_by_name_and_bounded() {
        let mut t = Table::default();
        t.entry("b", &|_| true).unwrap().in_flight = 2;
        t.entry("a", &|_| true).unwrap().in_flight = 1;
        t.entry("b", &|_| true).unwrap().in_flight += 1;
        assert_eq!(t.entries.len(), 2);
        assert_eq!(t.get("b").unwrap().in_flight, 3);
        let mut full = Table { entries: (0..MAX_ENTRIES).map(|i| (format!("m{i}"), ModelState::default())).collect() };
        full.entries[5].1.in_flight = 1;
        assert!(full.entry("new", &|n| n == "m7").is_some());
        let names: Vec<&str> = full.entries.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["m5", "m7", "new"], "idle entries of other configs dropped");
    }
}
