//! Table-driven tests of the Anthropic translators, with realistic fixtures.

mod request;
mod response;
mod stream;

use super::{write_json_string, write_value};

#[test]
fn json_strings_round_trip_at_every_alignment() {
    let specials: Vec<char> = (0u8..0x20).map(char::from).chain(['"', '\\', 'é', '\u{2028}', '😀', '\u{7f}']).collect();
    for pad in 0..17 {
        for &c in &specials {
            let s = format!("{}{c}{}", "a".repeat(pad), "b".repeat(17 - pad));
            let mut out = Vec::new();
            write_json_string(&mut out, &s);
            let back: String = serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {out:?}"));
            assert_eq!(back, s);
        }
    }
    let mut out = Vec::new();
    write_json_string(&mut out, "a\nb\t\"c\"\\\u{1}");
    assert_eq!(out, br#""a\nb\t\"c\"\\\u0001""#);
}

#[test]
fn values_round_trip() {
    let v = serde_json::json!({"a": [1, -2.5, 1e300, null, true, false, "x\ny"], "b": {}, "c": [], "d": {"e": "é"}});
    let mut out = Vec::new();
    write_value(&mut out, &v);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out).unwrap(), v);
}
