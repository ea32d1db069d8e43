use super::*;

fn ok(body: &[u8]) -> Scan {
    match scan(body) {
        Ok(s) => s,
        Err(e) => panic!("{:?}: unexpected {e:?}", String::from_utf8_lossy(body)),
    }
}

fn err(body: &[u8]) -> BodyError {
    match scan(body) {
        Ok(s) => panic!("{:?}: unexpected Ok({s:?})", String::from_utf8_lossy(body)),
        Err(e) => e,
    }
}

fn is_invalid(e: &BodyError) -> bool {
    matches!(e, BodyError::InvalidJson { .. })
}

/// Tiny deterministic PRNG (xorshift64*), so tests need no crates, time or threads.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

// ----------------------------------------------------------------- accepted bodies

/// Session fields: top level only, strings only, escapes compared and decoded, last wins,
/// located in the same pass and decoded on demand.
#[test]
fn requested_fields_are_found_at_the_top_level_only() {
    let fields = vec!["user".to_string(), "prompt_cache_key".to_string()];
    let get = |body: &[u8]| -> Vec<Option<String>> {
        let s = scan_fields(body, &fields).unwrap();
        assert_eq!(s.fields.len(), 2);
        s.fields.iter().map(|f| f.as_ref().and_then(|span| string_at(body, span))).collect()
    };
    let cases: &[(&[u8], [Option<&str>; 2])] = &[
        (br#"{"model":"m","user":"alice"}"#, [Some("alice"), None]),
        (br#"{"user":"bob","model":"m","prompt_cache_key":"k1"}"#, [Some("bob"), Some("k1")]),
        (br#"{"model":"m","messages":[{"user":"nested"}],"meta":{"user":"x"}}"#, [None, None]),
        (br#"{"model":"m","user":42}"#, [None, None]),
        (br#"{"model":"m","user":null}"#, [None, None]),
        (br#"{"model":"m","user":{"id":"a"}}"#, [None, None]),
        (br#"{"model":"m","\u0075ser":"esc\u0061ped"}"#, [Some("escaped"), None]),
        (br#"{"model":"m","user":"first","user":"last"}"#, [Some("last"), None]),
        (br#"{"model":"m","user":"first","user":7}"#, [None, None]),
        (br#"{"model":"m","user":""}"#, [Some(""), None]),
        ("{\"model\":\"m\",\"user\":\"ünï\"}".as_bytes(), [Some("ünï"), None]),
        (br#"{"model":"m","users":"no","use":"no"}"#, [None, None]),
    ];
    for (body, want) in cases {
        let want: Vec<Option<String>> = want.iter().map(|w| w.map(str::to_string)).collect();
        assert_eq!(get(body), want, "{}", String::from_utf8_lossy(body));
    }
    // Everything else is as `scan` says; without fields nothing is recorded.
    let body = br#"{"model":"m","stream":true,"user":"u"}"#;
    let with = scan_fields(body, &fields).unwrap();
    let without = scan(body).unwrap();
    assert_eq!((with.model.as_str(), with.model_span.clone(), with.stream), ("m", without.model_span.clone(), true));
    assert!(without.fields.is_empty());
    // Errors are unchanged.
    assert_eq!(scan_fields(br#"{"user":"u"}"#, &fields), Err(BodyError::MissingModel));
    assert!(matches!(scan_fields(br#"{"model":"m","user":"u"#, &fields), Err(BodyError::InvalidJson { .. })));
    // A field named like a nested key only matches at the top level, even when escaped.
    assert_eq!(get(br#"{"a":{"\u0075ser":"x"},"model":"m"}"#), vec![None, None]);
}

#[test]
fn accepted_table() {
    // (body, model, stream)
    let cases: &[(&[u8], &str, bool)] = &[
        (br#"{"model":"gpt-4o"}"#, "gpt-4o", false),
        (b" \t\r\n{ \n\"model\" \t: \r\"gpt\" \n, \"stream\"\t:\ttrue } \n", "gpt", true),
        (br#"{"model":"\u0066oo"}"#, "foo", false),
        (br#"{"model":"a\"b\\c\/d\b\f\n\r\t"}"#, "a\"b\\c/d\u{8}\u{c}\n\r\t", false),
        (br#"{"model":"\ud83d\ude00"}"#, "\u{1F600}", false),
        (br#"{"model":"\uD83D\uDE00x"}"#, "\u{1F600}x", false),
        (br#"{"model":"caf\u00e9 \u6a21\u578b"}"#, "café 模型", false),
        ("{\"model\":\"模型-ü-😀\"}".as_bytes(), "模型-ü-😀", false),
        (br#"{"model":"a\u0000b"}"#, "a\0b", false),
        (br#"{"model":"\uffff\u0800\u0080\u007f"}"#, "\u{ffff}\u{800}\u{80}\u{7f}", false),
        (br#"{"messages":[{"role":"user","content":"hi","model":"nested"}],"model":"top"}"#, "top", false),
        (br#"{"meta":{"model":"x","model":"y"},"model":"m"}"#, "m", false),
        (br#"{"a":[{"model":1},{"model":2}],"model":"m","b":[["model"]]}"#, "m", false),
        (br#"{"model":"m","stream":true}"#, "m", true),
        (br#"{"stream":true,"model":"m"}"#, "m", true),
        (br#"{"model":"m","stream":"true"}"#, "m", false),
        (br#"{"model":"m","stream":false}"#, "m", false),
        (br#"{"model":"m","stream":1}"#, "m", false),
        (br#"{"model":"m","stream":null}"#, "m", false),
        (br#"{"model":"m","stream":[true]}"#, "m", false),
        (br#"{"model":"m","stream":{"stream":true}}"#, "m", false),
        (br#"{"model":"m","options":{"stream":true}}"#, "m", false),
        (br#"{"model":"m","a":[{"stream":true}]}"#, "m", false),
        (br#"{"stream":true,"model":"m","stream":false}"#, "m", false),
        (br#"{"stream":false,"model":"m","stream":true}"#, "m", true),
        (br#"{"mod\u0065l":"m"}"#, "m", false),
        (br#"{"\u006d\u006F\u0064\u0065\u006c":"m"}"#, "m", false),
        (br#"{"model":"m","str\u0065am":true}"#, "m", true),
        (br#"{"model":"m","stre\u0061m":true,"stream ":false}"#, "m", true),
        (br#"{"Model":"x","models":"y","model ":"z","model":"m"}"#, "m", false),
        (br#"{"":1,"model":"m"}"#, "m", false),
        (br#"{"model":"model"}"#, "model", false),
        (br#"{"a":[0,-0,1.5,-1.5e10,1E+2,1e-2,0.0e0,123456789012345678901234567890],"model":"m"}"#, "m", false),
        (br#"{"a":[true,false,null],"b":-0.5E-3,"model":"m"}"#, "m", false),
        (br#"{"a":{},"b":[],"c":[{}],"d":[[]],"model":"m"}"#, "m", false),
        (br#"{ "a" : [ ] , "b" : { } , "model" : "m" }"#, "m", false),
        (br#"{"model":"m","x":"\ud800\udc00\udbff\udfff"}"#, "m", false),
        (br#"{"x":"\"model\":\"evil\"","model":"m"}"#, "m", false),
        (br#"{"model":"m","tail":"}]\\"}"#, "m", false),
        (br#"{"model":"12345678901234567890"}"#, "12345678901234567890", false),
    ];
    for (body, model, stream) in cases {
        let s = ok(body);
        assert_eq!(s.model, *model, "{:?}", String::from_utf8_lossy(body));
        assert_eq!(s.stream, *stream, "{:?}", String::from_utf8_lossy(body));
        let lit = &body[s.model_span.clone()];
        assert_eq!(lit.first(), Some(&b'"'));
        assert_eq!(lit.last(), Some(&b'"'));
        // The span is the first (and only) top-level model literal: decoding it again gives
        // the model.
        assert_eq!(decode_string(&lit[1..lit.len() - 1]).as_deref(), Some(*model));
    }
}

#[test]
fn span_is_exact() {
    let body = br#"{ "messages": [], "model" :  "a\"b" , "stream": true }"#;
    let s = ok(body);
    assert_eq!(&body[s.model_span.clone()], br#""a\"b""#);
    assert_eq!(s.model_span, 29..35);
}

#[test]
fn model_length_limit() {
    let at = format!(r#"{{"model":"{}"}}"#, "x".repeat(MAX_MODEL_LEN));
    assert_eq!(ok(at.as_bytes()).model.len(), MAX_MODEL_LEN);
    let over = format!(r#"{{"model":"{}"}}"#, "x".repeat(MAX_MODEL_LEN + 1));
    assert_eq!(err(over.as_bytes()), BodyError::ModelTooLong { len: MAX_MODEL_LEN + 1, max: MAX_MODEL_LEN });
    // Length is of the decoded bytes: 129 × "é" (2 bytes each) from 6-byte escapes.
    let esc = format!(r#"{{"model":"{}"}}"#, r"\u00e9".repeat(129));
    assert_eq!(err(esc.as_bytes()), BodyError::ModelTooLong { len: 258, max: MAX_MODEL_LEN });
    // 128 × "é" = 256 bytes: fine, even though the literal is 768 bytes.
    let esc = format!(r#"{{"model":"{}"}}"#, r"\u00e9".repeat(128));
    assert_eq!(ok(esc.as_bytes()).model, "é".repeat(128));
    // A huge model is still a length error, not a crash.
    let huge = format!(r#"{{"model":"{}"}}"#, "y".repeat(1 << 20));
    assert_eq!(err(huge.as_bytes()), BodyError::ModelTooLong { len: 1 << 20, max: MAX_MODEL_LEN });
}

fn nested(depth: usize, inner: &str) -> String {
    // `depth` containers in total, the outermost being the top-level object.
    let mut s = String::from(r#"{"model":"m","x":"#);
    for i in 1..depth {
        s.push_str(if i % 2 == 0 { r#"{"k":"# } else { "[" });
    }
    s.push_str(inner);
    for i in (1..depth).rev() {
        s.push(if i % 2 == 0 { '}' } else { ']' });
    }
    s.push('}');
    s
}

#[test]
fn depth_limit() {
    assert_eq!(ok(nested(MAX_DEPTH, "1").as_bytes()).model, "m");
    assert_eq!(ok(nested(MAX_DEPTH - 1, "[]").as_bytes()).model, "m");
    assert_eq!(ok(nested(MAX_DEPTH - 1, "{}").as_bytes()).model, "m");
    assert_eq!(err(nested(MAX_DEPTH, "[]").as_bytes()), BodyError::TooDeep);
    assert_eq!(err(nested(MAX_DEPTH, "{}").as_bytes()), BodyError::TooDeep);
    assert_eq!(err(nested(MAX_DEPTH + 1, "1").as_bytes()), BodyError::TooDeep);
    // Very deep, unterminated: no stack overflow, TooDeep before the truncation.
    assert_eq!(err("[".repeat(1_000_000).as_bytes()), BodyError::TooDeep);
    assert_eq!(err(r#"{"a":"#.repeat(100_000).as_bytes()), BodyError::TooDeep);
    // Deep but within the limit at top level array: not an object.
    let arr = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    assert_eq!(err(arr.as_bytes()), BodyError::NotAnObject);
    // Many siblings at shallow depth are fine (depth is not a counter of containers).
    let wide = format!(r#"{{"a":[{}[]],"model":"m"}}"#, "[[]],".repeat(10_000));
    assert_eq!(ok(wide.as_bytes()).model, "m");
}

// ----------------------------------------------------------------- rejected bodies

#[test]
fn invalid_json_table() {
    let cases: &[&[u8]] = &[
        b"",
        b"   ",
        b" \n\t\r ",
        b"\xEF\xBB\xBF{\"model\":\"m\"}", // BOM
        b"{",
        b"{\"model\"",
        b"{\"model\":",
        b"{\"model\":\"m\"",
        b"{\"model\":\"m",
        b"{\"model\":\"m\\",
        b"{\"model\":\"m\\u00",
        b"{\"model\":\"m\",",
        b"{\"model\":\"m\"}x",
        b"{\"model\":\"m\"}{}",
        b"{\"model\":\"m\"},",
        b"{\"model\":\"m\"}\0",
        b"{\"model\":\"m\",}",
        b"{,\"model\":\"m\"}",
        b"{\"model\":\"m\",,\"a\":1}",
        b"{\"a\":[1,],\"model\":\"m\"}",
        b"{\"a\":[,1],\"model\":\"m\"}",
        b"{\"a\":01,\"model\":\"m\"}",
        b"{\"a\":-01,\"model\":\"m\"}",
        b"{\"a\":00,\"model\":\"m\"}",
        b"{\"a\":1.,\"model\":\"m\"}",
        b"{\"a\":1.e5,\"model\":\"m\"}",
        b"{\"a\":.5,\"model\":\"m\"}",
        b"{\"a\":+1,\"model\":\"m\"}",
        b"{\"a\":-,\"model\":\"m\"}",
        b"{\"a\":-a,\"model\":\"m\"}",
        b"{\"a\":1e,\"model\":\"m\"}",
        b"{\"a\":1e+,\"model\":\"m\"}",
        b"{\"a\":1E-}",
        b"{\"a\":0x10,\"model\":\"m\"}",
        b"{\"a\":NaN,\"model\":\"m\"}",
        b"{\"a\":Infinity,\"model\":\"m\"}",
        b"{\"a\":-Infinity,\"model\":\"m\"}",
        b"{\"a\":tru,\"model\":\"m\"}",
        b"{\"a\":True,\"model\":\"m\"}",
        b"{\"a\":nul}",
        b"{\"a\":falsey,\"model\":\"m\"}",
        b"{\"a\":undefined,\"model\":\"m\"}",
        b"{'model':'m'}",
        b"{model:\"m\"}",
        b"{\"model\" \"m\"}",
        b"{\"model\"=\"m\"}",
        b"{\"model\":\"m\" \"a\":1}",
        b"{\"model\":\"m\";\"a\":1}",
        b"{\"model\":\"a\x01b\"}",
        b"{\"model\":\"a\tb\"}",
        b"{\"model\":\"a\nb\"}",
        b"{\"model\":\"m\",\"x\":\"\x1f\"}",
        b"{\"model\":\"\\x41\"}",
        b"{\"model\":\"\\U0041\"}",
        b"{\"model\":\"\\u12\"}",
        b"{\"model\":\"\\u12G4\"}",
        b"{\"model\":\"\\u-123\"}",
        b"{\"model\":\"\\ud800\"}",
        b"{\"model\":\"\\ud800x\"}",
        b"{\"model\":\"\\ud800\\n\"}",
        b"{\"model\":\"\\ud800\\u0041\"}",
        b"{\"model\":\"\\ud800\\ud800\"}",
        b"{\"model\":\"\\udc00\"}",
        b"{\"model\":\"\\udfff\\ud800\"}",
        b"{\"model\":\"m\",\"x\":\"\\udc00\"}",
        b"{\"model\":\"m\",\"\\ud800\":1}",
        b"{\"model\":\"\xff\"}",
        b"{\"model\":\"\xc0\xaf\"}",         // overlong '/'
        b"{\"model\":\"\xed\xa0\x80\"}",     // UTF-8-encoded surrogate
        b"{\"model\":\"\xe6\xa8\"}",         // truncated sequence
        b"{\"model\":\"\xf4\x90\x80\x80\"}", // > U+10FFFF
        b"{\"model\":\"m\",\"x\":\"ok \x80\"}",
        b"{\"model\":\"m\"}\xff",
        b"\xff{\"model\":\"m\"}",
        b"{\"a\":[1},\"model\":\"m\"}",
        b"{\"a\":{],\"model\":\"m\"}",
        b"{\"a\":{\"b\":1]}",
        b"{\"model\":\"m\"]",
        b"}",
        b"]",
        b"[}",
        b"{\"model\":\"m\"}}",
        b"\x0c{\"model\":\"m\"}",     // form feed is not JSON whitespace
        b"\xc2\xa0{\"model\":\"m\"}", // nor is U+00A0
        b"{\"model\":\"m\"} // comment",
        b"{\"model\":\"m\" /* c */}",
        b"{\"model\":\"m\",\"a\":[1 2]}",
        b"\"unterminated",
        b"{\"model\":\"a\",\"model\":\"b\",}", // syntax error wins over duplicate
        b"{\"model\":1",                       // and over not-a-string
        b"[1,",                                // and over not-an-object
    ];
    for body in cases {
        let e = err(body);
        assert!(is_invalid(&e), "{:?}: expected InvalidJson, got {e:?}", String::from_utf8_lossy(body));
    }
}

/// The string loop reads 64 then 16 bytes (wasm SIMD, in `make unit-wasm`) or 8 (SWAR) at a
/// time: a special byte at every offset of a string over two 64-byte runs long, before and
/// after each block's end, is found exactly, and a non-ASCII byte anywhere makes the UTF-8
/// check run.
#[test]
fn string_loop_finds_every_special_byte_at_every_offset() {
    const PRE: &[u8] = b"{\"model\":\"m\",\"x\":\"";
    for len in 0..150 {
        for at in 0..=len {
            let with = |mid: &[u8]| {
                let mut b = PRE.to_vec();
                b.extend(std::iter::repeat_n(b'a', at));
                b.extend_from_slice(mid);
                b.extend(std::iter::repeat_n(b'a', len - at));
                b.extend_from_slice(b"\"}");
                b
            };
            let offset = PRE.len() + at;
            let invalid_at = |b: &[u8], want: usize, what: &str| match scan(b) {
                Err(BodyError::InvalidJson { offset, .. }) => assert_eq!(offset, want, "{what}, len {len}, at {at}"),
                r => panic!("{what}, len {len}, at {at}: {r:?}"),
            };
            // Plain, an escape, non-ASCII text: valid; the scan ends at the right quote.
            for mid in [&b""[..], b"\\n", b"\\\"", b"\xc3\xa9", b"\xe2\x82\xac"] {
                let b = with(mid);
                assert_eq!(ok(&b).model, "m", "{mid:?}, len {len}, at {at}");
            }
            invalid_at(&with(b"\x01"), offset, "control byte");
            invalid_at(&with(b"\x1f"), offset, "control byte 0x1f");
            invalid_at(&with(b"\xff"), offset, "invalid UTF-8");
            invalid_at(&with(b"\xc3"), offset, "truncated UTF-8");
            invalid_at(&with(b"\\q"), offset, "bad escape");
            // 0x20 and 0x7f are plain string bytes.
            assert!(scan(&with(b" \x7f")).is_ok(), "len {len}, at {at}");
        }
    }
}

#[test]
fn invalid_json_offsets() {
    let cases: &[(&[u8], usize)] = &[
        (b"", 0),
        (b"  ", 2),
        (b"\xEF\xBB\xBF{}", 0),
        (b"{\"model\":\"m\"", 12),
        (b"{\"model\":\"m\"}x", 13),
        (b"{\"a\":01}", 6),
        (b"{\"a\":1.}", 7),
        (b"{\"model\":\"\xff\"}", 10),
        (b"{\"model\":\"ab\x01\"}", 12),
        (b"{\"model\":\"\\q\"}", 10),
        (b"{\"model\":\"\\ud800\"}", 10),
        (b"{\"a\":[1}", 7),
        (b"{\"a\" 1}", 5),
        (b"{\"a\":1,}", 7),
    ];
    for (body, offset) in cases {
        match err(body) {
            BodyError::InvalidJson { offset: o, .. } => {
                assert_eq!(o, *offset, "{:?}", String::from_utf8_lossy(body))
            }
            e => panic!("{:?}: {e:?}", String::from_utf8_lossy(body)),
        }
    }
}

#[test]
fn semantic_error_table() {
    use BodyError::*;
    let cases: &[(&[u8], BodyError)] = &[
        (b"[]", NotAnObject),
        (b"[{\"model\":\"m\"}]", NotAnObject),
        (b"\"model\"", NotAnObject),
        (b" 1 ", NotAnObject),
        (b"-0.5e3", NotAnObject),
        (b"null", NotAnObject),
        (b"true", NotAnObject),
        (b"false", NotAnObject),
        (b"{}", MissingModel),
        (b" { } ", MissingModel),
        (b"{\"Model\":\"m\"}", MissingModel),
        (b"{\"models\":\"m\"}", MissingModel),
        (b"{\"model \":\"m\"}", MissingModel),
        (b"{\"a\":{\"model\":\"m\"}}", MissingModel),
        (b"{\"a\":[{\"model\":\"m\"}]}", MissingModel),
        (b"{\"a\":\"model\"}", MissingModel),
        (b"{\"model\":1}", ModelNotString),
        (b"{\"model\":-1.5e3}", ModelNotString),
        (b"{\"model\":null}", ModelNotString),
        (b"{\"model\":true}", ModelNotString),
        (b"{\"model\":false}", ModelNotString),
        (b"{\"model\":{}}", ModelNotString),
        (b"{\"model\":{\"name\":\"m\"}}", ModelNotString),
        (b"{\"model\":[]}", ModelNotString),
        (b"{\"model\":[\"m\"]}", ModelNotString),
        (b"{\"model\":\"\"}", EmptyModel),
        (b"{\"model\":\"\",\"stream\":true}", EmptyModel),
        (b"{\"model\":\"a\",\"model\":\"b\"}", DuplicateModel),
        (b"{\"model\":\"a\",\"model\":\"a\"}", DuplicateModel),
        (b"{\"model\":\"a\",\"mod\\u0065l\":\"b\"}", DuplicateModel),
        (b"{\"\\u006dodel\":\"a\",\"model\":\"b\"}", DuplicateModel),
        (b"{\"model\":1,\"model\":\"a\"}", DuplicateModel),
        (b"{\"model\":\"a\",\"x\":{},\"model\":null}", DuplicateModel),
        (b"{\"model\":\"\",\"model\":\"\"}", DuplicateModel),
        (b"{\"model\":{\"model\":\"a\"},\"model\":\"b\"}", DuplicateModel),
    ];
    for (body, want) in cases {
        assert_eq!(&err(body), want, "{:?}", String::from_utf8_lossy(body));
    }
}

#[test]
fn display_is_short_and_does_not_echo_the_body() {
    let all = [
        BodyError::InvalidJson { offset: 17, reason: "invalid number" },
        BodyError::NotAnObject,
        BodyError::MissingModel,
        BodyError::ModelNotString,
        BodyError::EmptyModel,
        BodyError::DuplicateModel,
        BodyError::ModelTooLong { len: 300, max: 256 },
        BodyError::TooDeep,
    ];
    for e in &all {
        let s = e.to_string();
        assert!(!s.is_empty() && s.len() < 80, "{s}");
    }
    assert_eq!(all[0].to_string(), "invalid JSON at byte 17: invalid number");
    assert!(all[6].to_string().contains("300") && all[6].to_string().contains("256"));
    let e = err(br#"{"model":"secret-prompt-text"x}"#);
    assert!(!e.to_string().contains("secret"));
    let _: &dyn std::error::Error = &e;
}

// ----------------------------------------------------------------- rewrite

fn check_rewrite(body: &[u8], new_model: &str) {
    let before = ok(body);
    let out = rewrite_model(body, before.model_span.clone(), new_model).unwrap();
    let after = ok(&out);
    assert_eq!(after.model, new_model);
    assert_eq!(after.stream, before.stream);
    assert_eq!(after.model_span.start, before.model_span.start);
    // Every byte outside the span is unchanged.
    assert_eq!(&out[..after.model_span.start], &body[..before.model_span.start]);
    assert_eq!(&out[after.model_span.end..], &body[before.model_span.end..]);
    // And a strict parser agrees, but for the two documented differences (module docs): a
    // number beyond f64's range and nesting deeper than serde_json's 127.
    match serde_json::from_slice::<serde_json::Value>(&out) {
        Ok(v) => assert_eq!(v["model"], new_model),
        Err(e) if e.to_string().starts_with("number out of range") => {}
        Err(e) if e.to_string().starts_with("recursion limit exceeded") => {}
        Err(e) => panic!("{e}: {:?}", String::from_utf8_lossy(&out)),
    }
}

#[test]
fn rewrite_round_trips() {
    let bodies: &[&[u8]] = &[
        br#"{"model":"gpt-4o"}"#,
        br#"{"model":"gpt-4o","stream":true}"#,
        br#"{ "messages" : [ {"role":"user","content":"hi \"there\"","model":"x"} ] , "model" : "a\u00e9" , "stream" : true }"#,
        br#"{"stream":false,"mod\u0065l":"\ud83d\ude00"}"#,
    ];
    let models = [
        "claude-3",
        "x",
        "with \"quotes\" and \\backslash\\",
        "ctl \u{0} \u{1f} \n \t \u{7f}",
        "模型 😀 é",
        "</script>\u{2028}",
        "",
    ];
    for body in bodies {
        for m in models {
            if m.is_empty() {
                // Rewriting to "" is allowed; the re-scan then reports EmptyModel.
                let s = ok(body);
                let out = rewrite_model(body, s.model_span, m).unwrap();
                assert_eq!(scan(&out), Err(BodyError::EmptyModel));
            } else {
                check_rewrite(body, m);
            }
        }
    }
}

#[test]
fn rewrite_exact_bytes() {
    let body = br#"{"model": "old", "stream": true}"#;
    let s = ok(body);
    assert_eq!(
        rewrite_model(body, s.model_span.clone(), "n\"e\\w\u{1}").unwrap(),
        br#"{"model": "n\"e\\w\u0001", "stream": true}"#.to_vec()
    );
    assert_eq!(rewrite_model(body, s.model_span, "new").unwrap(), br#"{"model": "new", "stream": true}"#.to_vec());
}

#[test]
#[allow(clippy::reversed_empty_ranges)]
fn rewrite_rejects_bad_spans() {
    let body = br#"{"model":"m"}"#;
    assert_eq!(rewrite_model(body, 9..12, "x").unwrap(), br#"{"model":"x"}"#.to_vec());
    assert_eq!(rewrite_model(body, 9..14, "x"), None); // past the end
    assert_eq!(rewrite_model(body, 100..200, "x"), None);
    assert_eq!(rewrite_model(body, 12..9, "x"), None); // reversed
    assert_eq!(rewrite_model(body, 9..9, "x"), None); // empty
    assert_eq!(rewrite_model(body, 9..10, "x"), None); // a lone quote
    assert_eq!(rewrite_model(body, 8..12, "x"), None); // does not start with a quote
    assert_eq!(rewrite_model(body, 9..11, "x"), None); // does not end with a quote
    assert_eq!(rewrite_model(b"", 0..0, "x"), None);
    assert_eq!(rewrite_model(b"\"\"", 0..2, "x").unwrap(), b"\"x\"".to_vec());
    assert_eq!(rewrite_model(body, usize::MAX..usize::MAX, "x"), None);
    assert_eq!(rewrite_model(body, 0..usize::MAX, "x"), None);
}

#[test]
fn json_string_encoding() {
    let cases: &[(&str, &str)] = &[
        ("", r#""""#),
        ("abc", r#""abc""#),
        ("\"", r#""\"""#),
        ("\\", r#""\\""#),
        ("\u{0}\u{1f}\n", r#""\u0000\u001f\n""#),
        ("é😀/", "\"é😀/\""),
        ("a\"b\\c", r#""a\"b\\c""#),
    ];
    for (s, want) in cases {
        let mut out = Vec::new();
        write_json_string(&mut out, s);
        assert_eq!(String::from_utf8(out.clone()).unwrap(), *want);
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, *s);
    }
}

// ----------------------------------------------------------------- big realistic bodies

/// A realistic chat-completion body of at least `target` bytes: long messages with
/// escapes (\n, \", \\, \uXXXX, surrogate pairs) and raw UTF-8, nested tool schemas with
/// their own "model"/"stream" keys, and the top-level "model" at the very end.
pub(crate) fn chat_body(target: usize, model: &str) -> Vec<u8> {
    let para = "Hello! Here is some text with \\\"quotes\\\", a path C:\\\\dir\\\\f.txt, \
                newlines\\n\\n  - item one\\n  - item two\\ttabbed, unicode caf\u{e9} \
                \u{6a21}\u{578b} \u{1F600} and escapes \\u00e9 \\ud83d\\ude00 \\/ end. \
                Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod \
                tempor incididunt ut labore et dolore magna aliqua. ";
    let mut s = String::with_capacity(target + 4096);
    s.push_str(r#"{"messages": ["#);
    s.push_str(r#"{"role": "system", "content": "You are helpful.", "model": "nested-ignored"}"#);
    let mut i = 0;
    while s.len() < target {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        s.push_str(&format!(r#", {{"role": "{role}", "name": "u{i}", "content": ""#));
        for _ in 0..(8 + i % 5) {
            s.push_str(para);
        }
        s.push_str(r#""}"#);
        i += 1;
    }
    s.push_str(
        r#"], "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"model": {"type": "string"}, "stream": {"type": "boolean", "default": true}}}}}], "temperature": 0.7, "max_tokens": 1024, "top_p": 1, "stream": true, "model": "#,
    );
    let mut out = s.into_bytes();
    write_json_string(&mut out, model);
    out.push(b'}');
    out
}

#[test]
fn one_megabyte_body_with_model_last() {
    let body = chat_body(1 << 20, "gpt-4o-mini");
    assert!(body.len() >= 1 << 20);
    let s = ok(&body);
    assert_eq!(s.model, "gpt-4o-mini");
    assert!(s.stream);
    assert_eq!(s.model_span.end, body.len() - 1);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["model"], "gpt-4o-mini");
    check_rewrite(&body, "claude-3-5-sonnet");
}

/// The glue buffers every chunk and scans the concatenation: document that scanning the
/// concatenation of any split equals scanning the whole.
#[test]
fn split_and_concatenate_equals_whole() {
    let bodies: &[&[u8]] = &[
        br#"{"model":"m\u00e9","stream":true}"#,
        "{\"model\":\"模型\",\"x\":[1,2,{\"a\":null}]}".as_bytes(),
        br#"{"model":"a","model":"b"}"#,
        br#"{"model":"#,
        b"{\"model\":\"\xff\"}",
    ];
    for body in bodies {
        let whole = scan(body);
        for i in 0..=body.len() {
            for j in i..=body.len() {
                let mut buf = Vec::new();
                for chunk in [&body[..i], &body[i..j], &body[j..]] {
                    buf.extend_from_slice(chunk);
                }
                assert_eq!(scan(&buf), whole);
            }
        }
    }
    let big = chat_body(64 << 10, "m");
    let whole = scan(&big);
    let mut rng = Rng(7);
    let mut buf = Vec::new();
    let mut rest: &[u8] = &big;
    while !rest.is_empty() {
        let (chunk, r) = rest.split_at(rng.below(rest.len().min(5000)) + 1);
        buf.extend_from_slice(chunk);
        rest = r;
    }
    assert_eq!(scan(&buf), whole);
}

// ----------------------------------------------------------------- differential vs serde_json

fn gen_string(rng: &mut Rng, out: &mut String) {
    const PIECES: &[&str] = &[
        "a",
        "model",
        "stream",
        " ",
        "é",
        "模",
        "😀",
        "\\n",
        "\\\"",
        "\\\\",
        "\\/",
        "\\b",
        "\\f",
        "\\r",
        "\\t",
        "\\u0041",
        "\\u00e9",
        "\\uD83D\\uDE00",
        "\\u0000",
        "\\uffff",
        "\\ud800",
        "\\udc00",
        "\\x",
        "\u{1}",
        "\"",
        "\\",
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
    ];
    out.push('"');
    for _ in 0..rng.below(6) {
        // Now and then a long plain run, so that the string loop's 64- and 16-byte blocks
        // (SIMD in `make unit-wasm`) meet the pieces (and the mutations) at every offset.
        if rng.below(6) == 0 {
            let plain = if rng.below(4) == 0 { "é" } else { "a" };
            out.push_str(&plain.repeat(rng.below(140)));
        }
        // Mostly valid pieces; the invalid ones (lone surrogates, raw control/quote/backslash)
        // are rare.
        let p = if rng.below(8) == 0 { rng.pick(PIECES) } else { rng.pick(&PIECES[..20]) };
        out.push_str(p);
    }
    out.push('"');
}

fn gen_number(rng: &mut Rng, out: &mut String) {
    const NUMS: &[&str] = &[
        "0",
        "-0",
        "1",
        "-17",
        "3.25",
        "1e5",
        "1E-7",
        "-2.5e+3",
        "123456789012345678901",
        "0.000001",
        "9007199254740993",
    ];
    out.push_str(rng.pick(NUMS));
}

fn gen_value(rng: &mut Rng, depth: usize, out: &mut String) {
    let pad = |rng: &mut Rng, out: &mut String| {
        if rng.below(4) == 0 {
            out.push_str(rng.pick(&[" ", "\n", "\t", "\r\n  ", ""]));
        }
    };
    pad(rng, out);
    match if depth > 4 { rng.below(4) } else { rng.below(6) } {
        0 => gen_string(rng, out),
        1 => gen_number(rng, out),
        2 => out.push_str(rng.pick(&["true", "false", "null"])),
        3 => gen_string(rng, out),
        4 => {
            out.push('[');
            for i in 0..rng.below(4) {
                if i > 0 {
                    out.push(',');
                }
                gen_value(rng, depth + 1, out);
            }
            out.push(']');
        }
        _ => gen_object(rng, depth + 1, out, false),
    }
    pad(rng, out);
}

fn gen_object(rng: &mut Rng, depth: usize, out: &mut String, top: bool) {
    const KEYS: &[&str] = &[
        "\"model\"",
        "\"stream\"",
        "\"messages\"",
        "\"mod\\u0065l\"",
        "\"Model\"",
        "\"a\"",
        "\"\"",
        "\"str\\u0065am\"",
    ];
    out.push('{');
    let n = rng.below(5);
    let model_at = if top && rng.below(5) != 0 { Some(rng.below(n + 1)) } else { None };
    let mut first = true;
    for i in 0..=n {
        if model_at == Some(i) {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str("\"model\":");
            gen_string(rng, out);
        }
        if i < n {
            if !first {
                out.push(',');
            }
            first = false;
            let key = rng.pick(KEYS);
            out.push_str(key);
            out.push(':');
            if key == "\"stream\"" && rng.below(2) == 0 {
                out.push_str(rng.pick(&["true", "false", "\"true\""]));
            } else {
                gen_value(rng, depth, out);
            }
        }
    }
    out.push('}');
}

fn mutate(rng: &mut Rng, body: &mut Vec<u8>) {
    const BYTES: &[u8] = b"{}[],:\" \\0123456789.eE+-tfnulx\x01\x80\xff\xc3\xa9";
    for _ in 0..=rng.below(3) {
        let at = rng.below(body.len() + 1);
        match rng.below(5) {
            0 if at < body.len() => {
                body.remove(at);
            }
            1 => body.insert(at, rng.pick(BYTES)),
            2 if at < body.len() => body[at] = rng.pick(BYTES),
            3 => body.truncate(at),
            _ => {
                let end = (at + rng.below(8)).min(body.len());
                let dup = body[at..end].to_vec();
                body.splice(at..at, dup);
            }
        }
    }
}

/// Compare with serde_json on one body; returns whether serde_json accepted it.
fn differential(body: &[u8]) -> bool {
    let ours = scan(body);
    let theirs = serde_json::from_slice::<serde_json::Value>(body);
    let ctx = || String::from_utf8_lossy(body).into_owned();
    match (&theirs, &ours) {
        // serde_json limits depth to 127 and numbers to f64 range; neither is generated.
        (Err(e), _) if e.to_string().contains("recursion limit") => {}
        (Err(e), _) if e.to_string().contains("number out of range") => {}
        (_, Err(BodyError::TooDeep)) => {}
        (Err(_), Err(e)) => assert!(is_invalid(e), "{}: serde rejects, we say {e:?}", ctx()),
        (Err(t), Ok(s)) => panic!("{}: serde rejects ({t}), we accept {s:?}", ctx()),
        (Ok(_), Err(e @ BodyError::InvalidJson { .. })) => {
            panic!("{}: serde accepts, we say {e:?}", ctx())
        }
        (Ok(v), Ok(s)) => {
            assert_eq!(v["model"], s.model.as_str(), "{}", ctx());
            assert_eq!(s.stream, v["stream"] == true, "{}", ctx());
        }
        (Ok(v), Err(e)) => {
            let want = match v.as_object() {
                None => BodyError::NotAnObject,
                Some(_) if *e == BodyError::DuplicateModel => BodyError::DuplicateModel,
                Some(o) => match o.get("model") {
                    None => BodyError::MissingModel,
                    Some(serde_json::Value::String(m)) if m.is_empty() => BodyError::EmptyModel,
                    Some(serde_json::Value::String(m)) => BodyError::ModelTooLong { len: m.len(), max: MAX_MODEL_LEN },
                    Some(_) => BodyError::ModelNotString,
                },
            };
            assert_eq!(*e, want, "{}", ctx());
        }
    }
    theirs.is_ok()
}

#[test]
fn differential_against_serde_json() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut accepted, mut rejected, mut scanned_ok) = (0, 0, 0);
    for round in 0..20_000 {
        let mut s = String::new();
        if round % 10 == 0 {
            gen_value(&mut rng, 0, &mut s);
        } else {
            gen_object(&mut rng, 1, &mut s, true);
        }
        let mut body = s.into_bytes();
        if round % 2 == 1 {
            mutate(&mut rng, &mut body);
        }
        if differential(&body) {
            accepted += 1;
        } else {
            rejected += 1;
        }
        if let Ok(sc) = scan(&body) {
            scanned_ok += 1;
            check_rewrite(&body, "rewritten/model \"x\"");
            assert_eq!(&body[sc.model_span.clone()].first(), &Some(&b'"'));
        }
    }
    eprintln!("differential: {accepted} accepted, {rejected} rejected, {scanned_ok} scanned ok");
    // The generator must exercise both sides meaningfully.
    assert!(accepted > 5000 && rejected > 5000, "{accepted} accepted, {rejected} rejected");
    assert!(scanned_ok > 2500, "{scanned_ok}");
}

#[test]
fn differential_hand_written() {
    // Every table body above, through the differential oracle too.
    let bodies: &[&[u8]] = &[
        br#"{"model":"\u0066oo","stream":true}"#,
        br#"{"model":"m","model":"n"}"#,
        b"{\"model\":\"\xed\xa0\x80\"}",
        br#"{"model":"\ud800"}"#,
        br#"{"model":"m","x":"\udc00"}"#,
        br#"{"a":1e5,"model":"m"}"#,
        br#"{"a":-0.0E+0,"model":"m"}"#,
        b"\xEF\xBB\xBF{\"model\":\"m\"}",
        b"{\"model\":\"m\"}\x0c",
        b" [ ] ",
        b"{\"model\":\"m\",\"a\":[01]}",
    ];
    for body in bodies {
        differential(body);
    }
    differential(&chat_body(100_000, "m"));
}

#[test]
fn literal_edit_equals_the_full_rewrite() {
    for body in [
        &br#"{"model":"w","messages":[{"role":"user","content":"hi"}]}"#[..],
        br#"{"messages":[{"model":"nested"}],"model":"w","stream":true}"#,
        br#"{ "mod\u0065l" : "\u0077" }"#,
    ] {
        let s = scan(body).unwrap();
        for new in ["gpt-4o", "a\"b", ""] {
            let literal = model_literal_edit(body, s.model_span.clone(), new).unwrap();
            let mut spliced = body[..s.model_span.start].to_vec();
            spliced.extend_from_slice(&literal);
            spliced.extend_from_slice(&body[s.model_span.end..]);
            assert_eq!(Some(spliced), rewrite_model(body, s.model_span.clone(), new));
        }
    }
    assert_eq!(model_literal_edit(b"{}", 5..9, "x"), None);
    assert_eq!(model_literal_edit(br#"{"model":1}"#, 9..10, "x"), None, "not a string literal");
}

#[test]
fn decimal_writer_matches_the_formatter() {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut values = vec![0, 1, 9, 10, 11, 99, 100, 101, 999_999, 1_000_000, u64::MAX - 1, u64::MAX];
    values.extend((0..64).map(|i| 1u64 << i));
    values.extend((0..200).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x >> (x % 64)
    }));
    for n in values {
        let mut out = b"x".to_vec();
        super::push_u64(&mut out, n);
        assert_eq!(out, format!("x{n}").into_bytes());
        assert_eq!(super::u64_string(n), n.to_string());
    }
}
