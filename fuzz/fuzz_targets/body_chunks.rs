//! The glue buffers the request body chunk by chunk and scans the concatenation once the
//! stream ends. Split the body at fuzzer-chosen points, accumulate like a body buffer, and
//! check: the accumulation equals the body, scanning it equals scanning the whole, and, when
//! the whole body is accepted, no incomplete prefix of it (what the glue would see if it
//! scanned too early) is accepted unless it differs from the whole only by trailing
//! whitespace. (A prefix of a *rejected* body may be fine: `{"model":"m"}` + `]`.)
//!
//! Input layout: byte 0 = number of cut points (mod 16), then 2 bytes (LE) per cut point
//! (taken mod body length + 1), then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model_workers::body::scan;

fuzz_target!(|data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = usize::from(count % 16);
    let Some((cuts_raw, body)) = rest.split_at_checked(count * 2) else {
        return;
    };
    let mut cuts: Vec<usize> =
        cuts_raw.chunks_exact(2).map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (body.len() + 1)).collect();
    cuts.sort_unstable();

    let whole = scan(body);
    let mut buffer: Vec<u8> = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&body.len())) {
        buffer.extend_from_slice(&body[from..cut]);
        from = cut;
        // An early scan of a prefix of an accepted body is never a different success.
        if let (Ok(early), Ok(_)) = (scan(&buffer), &whole) {
            let rest = &body[buffer.len()..];
            assert!(
                rest.iter().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')),
                "incomplete body accepted: {early:?}"
            );
            assert_eq!(Ok(early), whole.clone());
        }
    }
    assert_eq!(buffer, body);
    assert_eq!(scan(&buffer), whole);
});
