//! Ticket counters. Round-robin and weighted workers draw one ticket per request; the
//! production implementation (in the glue) is a compare-and-swap increment on proxy-wasm
//! shared data, which every worker thread's VM in an Envoy process sees, so rotations and
//! ratios are exact process-wide. [`LocalTickets`] is the in-memory fake for tests and the
//! fallback should shared data ever fail.

use std::collections::HashMap;

/// A source of monotonically increasing tickets, one sequence per key.
pub trait Tickets {
    /// The next ticket for `key` (0, 1, 2, …).
    fn next(&mut self, key: &str) -> u64;
}

/// Per-VM counters (not shared across threads).
#[derive(Debug, Default)]
pub struct LocalTickets {
    counters: HashMap<String, u64>,
}

impl Tickets for LocalTickets {
    fn next(&mut self, key: &str) -> u64 {
        let c = self.counters.entry(key.to_string()).or_insert(0);
        let t = *c;
        *c = c.wrapping_add(1);
        t
    }
}

/// Encoding of a counter value in shared data: 8 bytes little-endian.
pub fn decode(bytes: Option<&[u8]>) -> u64 {
    match bytes.and_then(|b| <[u8; 8]>::try_from(b).ok()) {
        Some(arr) => u64::from_le_bytes(arr),
        None => 0,
    }
}

pub fn encode(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

/// The one read-modify-write loop over shared data, host-agnostic: `read` returns the stored
/// bytes and a CAS token, `write` stores under that token and returns `Some(false)` on a CAS
/// mismatch (another thread wrote in between: read again). `modify` sees the current bytes and
/// returns the bytes to store (`None`: nothing to change, no write) and its result. Returns
/// that result once stored (or unchanged), or None after `max_tries` lost races or a host
/// error (`read` / `write` returning None): the caller degrades, it never panics.
pub fn cas_update<R, W, M, T>(mut read: R, mut write: W, max_tries: u32, mut modify: M) -> Option<T>
where
    R: FnMut() -> Option<(Option<Vec<u8>>, Option<u32>)>,
    W: FnMut(&[u8], Option<u32>) -> Option<bool>,
    M: FnMut(Option<&[u8]>) -> (Option<Vec<u8>>, T),
{
    for _ in 0..max_tries {
        let (bytes, cas) = read()?;
        let (next, result) = modify(bytes.as_deref());
        let Some(next) = next else { return Some(result) };
        if write(&next, cas)? {
            return Some(result);
        }
    }
    None
}

/// A counter's next ticket ([`cas_update`] on an 8-byte value). None after `max_tries` lost
/// races (or a host error).
pub fn cas_increment<R, W>(read: R, write: W, max_tries: u32) -> Option<u64>
where
    R: FnMut() -> Option<(Option<Vec<u8>>, Option<u32>)>,
    W: FnMut(&[u8], Option<u32>) -> Option<bool>,
{
    cas_update(read, write, max_tries, |bytes| {
        let t = decode(bytes);
        (Some(encode(t.wrapping_add(1)).to_vec()), t)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn local_counts_per_key() {
        let mut t = LocalTickets::default();
        assert_eq!(t.next("a"), 0);
        assert_eq!(t.next("a"), 1);
        assert_eq!(t.next("b"), 0);
        assert_eq!(t.next("a"), 2);
    }

    #[test]
    fn codec_roundtrip_and_garbage() {
        assert_eq!(decode(Some(&encode(42))), 42);
        assert_eq!(decode(None), 0);
        assert_eq!(decode(Some(b"xyz")), 0);
    }

    /// A fake shared store with a CAS token that changes on every write; `interfere` makes
    /// another "thread" write between our read and write the first N times.
    #[test]
    fn cas_loop_retries_on_mismatch() {
        let store = RefCell::new((encode(7).to_vec(), 1u32));
        let interfere = RefCell::new(2);
        let read = || {
            let s = store.borrow();
            Some((Some(s.0.clone()), Some(s.1)))
        };
        let write = |v: &[u8], cas: Option<u32>| {
            if *interfere.borrow() > 0 {
                *interfere.borrow_mut() -= 1;
                let mut s = store.borrow_mut();
                let cur = decode(Some(&s.0));
                *s = (encode(cur + 1).to_vec(), s.1 + 1);
            }
            let mut s = store.borrow_mut();
            if Some(s.1) != cas {
                return Some(false);
            }
            *s = (v.to_vec(), s.1 + 1);
            Some(true)
        };
        // Two interfering writes took 7 and 8; we get 9 and store 10.
        assert_eq!(cas_increment(read, write, 10), Some(9));
        assert_eq!(decode(Some(&store.borrow().0)), 10);
    }

    #[test]
    fn cas_update_skips_the_write_when_nothing_changes() {
        let writes = RefCell::new(0);
        let r = cas_update(
            || Some((Some(vec![1]), Some(3))),
            |_, _| {
                *writes.borrow_mut() += 1;
                Some(true)
            },
            4,
            |b| (None, b.map(<[u8]>::len)),
        );
        assert_eq!(r, Some(Some(1)));
        assert_eq!(*writes.borrow(), 0);
        // A host error on write: None, no retry.
        let tries = RefCell::new(0);
        let r = cas_update(
            || {
                *tries.borrow_mut() += 1;
                Some((None, None))
            },
            |_, _| None,
            4,
            |_| (Some(vec![0]), ()),
        );
        assert_eq!((r, *tries.borrow()), (None, 1));
    }

    #[test]
    fn cas_loop_gives_up() {
        assert_eq!(cas_increment(|| Some((None, Some(1))), |_, _| Some(false), 5), None);
        assert_eq!(cas_increment(|| None, |_, _| Some(true), 5), None);
    }
}
