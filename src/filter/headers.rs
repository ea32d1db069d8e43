//! A header map as the host hands it over: one buffer in the proxy-wasm encoding (pair count
//! as u32 LE, then each pair's key and value lengths as u32 LE, then each key and value
//! followed by a NUL), read in place — no allocation per header on the request path.

/// One header map's pairs, borrowed from one buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    raw: Vec<u8>,
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    let s: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(s)).ok()
}

impl Headers {
    /// The host's encoding as it came (malformed input yields the pairs that could be read).
    pub fn from_raw(raw: Vec<u8>) -> Headers {
        Headers { raw }
    }

    /// The encoded bytes.
    pub fn into_raw(self) -> Vec<u8> {
        self.raw
    }

    /// Encode pairs the way the host does.
    pub fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone) -> Headers {
        let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
        let mut raw = len(pairs.clone().into_iter().count()).to_vec();
        for (k, v) in pairs.clone() {
            raw.extend_from_slice(&len(k.len()));
            raw.extend_from_slice(&len(v.len()));
        }
        for (k, v) in pairs {
            raw.extend_from_slice(k.as_bytes());
            raw.push(0);
            raw.extend_from_slice(v);
            raw.push(0);
        }
        Headers { raw }
    }

    /// Every pair in order: the name (a pair whose name is not UTF-8 — never sent by Envoy,
    /// whose names are tokens — is skipped) and the value's raw bytes (never assumed UTF-8).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let b = self.raw.as_slice();
        let n = u32_at(b, 0).unwrap_or(0);
        let start = n.checked_mul(8).and_then(|x| x.checked_add(4));
        let mut at = start.unwrap_or(usize::MAX);
        (0..n)
            .map_while(move |i| {
                let kl = u32_at(b, i.checked_mul(8)?.checked_add(4)?)?;
                let vl = u32_at(b, i.checked_mul(8)?.checked_add(8)?)?;
                let k = b.get(at..at.checked_add(kl)?)?;
                at = at.checked_add(kl)?.checked_add(1)?;
                let v = b.get(at..at.checked_add(vl)?)?;
                at = at.checked_add(vl)?.checked_add(1)?;
                Some((k, v))
            })
            .filter_map(|(k, v)| Some((std::str::from_utf8(k).ok()?, v)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::Headers;

    #[test]
    fn pairs_round_trip_in_order_with_raw_values() {
        let pairs: [(&str, &[u8]); 4] =
            [(":status", b"200"), ("x-a", b""), ("", b"empty name"), ("x-bin", &[0xff, 0, 0x80])];
        let h = Headers::encode(pairs.iter().copied());
        assert_eq!(h.iter().collect::<Vec<_>>(), pairs.to_vec());
        assert_eq!(Headers::default().iter().count(), 0);
    }

    #[test]
    fn malformed_maps_yield_what_could_be_read() {
        let h = Headers::encode([("a", b"1".as_slice()), ("b", b"22".as_slice())]);
        let raw = h.raw.clone();
        // Every truncation stops cleanly, never past the buffer.
        for cut in 0..raw.len() {
            let got: Vec<_> = Headers::from_raw(raw[..cut].to_vec()).iter().map(|(k, _)| k.to_string()).collect();
            assert!(got.len() <= 2, "{cut}: {got:?}");
            assert!(["a", "b"].starts_with(&got.iter().map(String::as_str).collect::<Vec<_>>()[..]), "{cut}: {got:?}");
        }
        // A count far beyond the data, and lengths past the end.
        let mut lying = raw.clone();
        lying[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Headers::from_raw(lying).iter().count(), 0);
        let mut long = raw;
        long[4..8].copy_from_slice(&1_000_000u32.to_le_bytes());
        assert_eq!(Headers::from_raw(long).iter().count(), 0);
        // A non-UTF-8 name is skipped, the rest still read.
        let h = Headers::encode([("a", b"1".as_slice()), ("b", b"2".as_slice())]);
        let mut raw = h.raw;
        let at = 4 + 2 * 8;
        raw[at] = 0xff;
        assert_eq!(Headers::from_raw(raw).iter().collect::<Vec<_>>(), vec![("b", b"2".as_slice())]);
    }
}
