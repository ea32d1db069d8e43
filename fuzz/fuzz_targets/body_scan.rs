//! `scan` + `rewrite_model` on arbitrary bytes.
//!
//! Properties: nothing panics; a successful scan's span re-scans to the new model after a
//! rewrite (same stream flag, every other byte unchanged); a rewrite of a body serde_json
//! accepts as an object is accepted by serde_json too; and scan agrees with serde_json on
//! what is valid JSON (modulo serde_json's own limits: depth 127, numbers in f64 range).
#![no_main]

use libfuzzer_sys::fuzz_target;
use model_workers::body::{rewrite_model, scan, BodyError, MAX_MODEL_LEN};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let result = scan(data);
    if let Err(e) = &result {
        let _ = e.to_string();
    }

    // Arbitrary (often invalid) spans must not panic either.
    let n = data.len();
    for span in [0..n, n / 3..n / 2, n / 2..n / 3, n..n + 1, 1..n.saturating_sub(1)] {
        if let Some(out) = rewrite_model(data, span.clone(), "x") {
            let old = data.get(span).expect("only in-range spans are rewritten");
            assert_eq!(out.len(), n - old.len() + 3);
        }
    }

    // Differential against serde_json's strict parser.
    let serde = serde_json::from_slice::<Value>(data);
    match (&serde, &result) {
        (Ok(_), Err(e @ (BodyError::InvalidJson { .. } | BodyError::TooDeep))) => {
            panic!("serde_json accepts, scan says {e:?}")
        }
        (
            Err(se),
            Ok(_)
            | Err(
                BodyError::NotAnObject
                | BodyError::MissingModel
                | BodyError::ModelNotString
                | BodyError::EmptyModel
                | BodyError::DuplicateModel
                | BodyError::ModelTooLong { .. },
            ),
        ) => {
            let msg = se.to_string();
            assert!(
                msg.contains("number out of range") || msg.contains("recursion limit"),
                "scan accepts the syntax ({result:?}), serde_json says {msg}"
            );
        }
        (Ok(v), Ok(s)) => {
            assert_eq!(v["model"], s.model.as_str());
            assert_eq!(v["stream"] == true, s.stream);
        }
        _ => {}
    }

    let Ok(s) = result else { return };
    assert!(!s.model.is_empty() && s.model.len() <= MAX_MODEL_LEN);
    let serde_object = matches!(&serde, Ok(v) if v.is_object());
    let start = s.model_span.start;
    let tail = &data[s.model_span.end..];
    for new_model in ["gpt-4o-mini", "we\"ird\\ \u{0}\u{1f} 模型 😀 \u{2028}", s.model.as_str()] {
        let out = rewrite_model(data, s.model_span.clone(), new_model).expect("a span from scan is always accepted");
        let again = scan(&out).expect("a rewritten body must re-scan");
        assert_eq!(again.model, new_model);
        assert_eq!(again.stream, s.stream);
        assert_eq!(again.model_span.start, start);
        assert_eq!(&out[..start], &data[..start]);
        assert_eq!(&out[again.model_span.end..], tail);
        if serde_object {
            let v: Value = serde_json::from_slice(&out).expect("serde_json parses the rewrite");
            assert_eq!(v["model"], new_model);
        }
    }
});
