//! `StreamTranslator` on arbitrary bytes split at fuzzer-chosen points: never panics; the
//! output is a sequence of `data: …\n\n` events, each valid JSON except the last, which is
//! `data: [DONE]` (exactly once); splitting the input does not change the output; nothing
//! comes after `finish`.
//!
//! Input layout: byte 0 = include_usage (bit 7) and the number of cut points (mod 16), then
//! 2 bytes (LE) per cut point (taken mod stream length + 1), then the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model_workers::translate::StreamTranslator;

fn run(stream: &[u8], cuts: &[usize], usage: bool) -> Vec<u8> {
    let mut t = StreamTranslator::new(usage);
    let mut out = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
        out.extend(t.push(&stream[from..cut]));
        from = cut;
    }
    out.extend(t.finish());
    assert!(t.finish().is_empty(), "a second finish adds nothing");
    assert!(t.push(b"data: {\"type\":\"message_stop\"}\n\n").is_empty(), "input after the end is ignored");
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let usage = head & 0x80 != 0;
    let count = usize::from(head & 0x0f);
    let Some((cuts_raw, stream)) = rest.split_at_checked(count * 2) else {
        return;
    };
    let mut cuts: Vec<usize> =
        cuts_raw.chunks_exact(2).map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (stream.len() + 1)).collect();
    cuts.sort_unstable();

    let whole = run(stream, &[], usage);
    assert_eq!(run(stream, &cuts, usage), whole, "splitting changed the output");

    let text = std::str::from_utf8(&whole).expect("the output is UTF-8");
    let body = text.strip_suffix("data: [DONE]\n\n").expect("the output ends with [DONE]");
    for event in body.split_terminator("\n\n") {
        let json = event.strip_prefix("data: ").expect("every event is one data line");
        // Also excludes a second `[DONE]`: it is not JSON.
        assert!(!json.contains('\n'));
        serde_json::from_str::<serde_json::Value>(json).expect("every event is valid JSON");
    }
});
