use serde_json::{json, Value};

use crate::translate::anthropic::{StreamTranslator, MAX_EVENT_BYTES};

/// A recorded-style Anthropic stream: text, a ping, two tool_use blocks whose input arrives in
/// fragments (one fragment with a multi-byte character), a thinking delta to ignore.
const RECORDED: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01TmX","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":100,"output_tokens":2,"service_tier":"standard"}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"I"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"'ll check the weather in \"Zürich\"\n"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"ignored"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Z"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ürich\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01B","name":"get_time","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"#;

const HEAD: &str =
    r#"{"id":"msg_01TmX","object":"chat.completion.chunk","created":0,"model":"claude-sonnet-4-5-20250929""#;

fn chunk(delta: &str, finish: &str, usage: bool) -> String {
    let usage = if usage { r#","usage":null"# } else { "" };
    format!(
        "data: {HEAD},\"choices\":[{{\"index\":0,\"delta\":{{{delta}}},\"logprobs\":null,\"finish_reason\":{finish}}}]{usage}}}\n\n"
    )
}

fn expected(usage: bool) -> String {
    let mut s = String::new();
    for (delta, finish) in [
        (r#""role":"assistant","content":"""#, "null"),
        (r#""content":"I""#, "null"),
        (r#""content":"'ll check the weather in \"Zürich\"\n""#, "null"),
        (
            r#""tool_calls":[{"index":0,"id":"toolu_01A","type":"function","function":{"name":"get_weather","arguments":""}}]"#,
            "null",
        ),
        (r#""tool_calls":[{"index":0,"function":{"arguments":"{\"city\": \"Z"}}]"#, "null"),
        (r#""tool_calls":[{"index":0,"function":{"arguments":"ürich\"}"}}]"#, "null"),
        (
            r#""tool_calls":[{"index":1,"id":"toolu_01B","type":"function","function":{"name":"get_time","arguments":""}}]"#,
            "null",
        ),
        (r#""tool_calls":[{"index":1,"function":{"arguments":"{}"}}]"#, "null"),
        ("", r#""tool_calls""#),
    ] {
        s.push_str(&chunk(delta, finish, usage));
    }
    if usage {
        s.push_str(&format!(
            "data: {HEAD},\"choices\":[],\"usage\":{{\"prompt_tokens\":572,\"completion_tokens\":89,\"total_tokens\":661,\"prompt_tokens_details\":{{\"cached_tokens\":100}}}}}}\n\n"
        ));
    }
    s.push_str("data: [DONE]\n\n");
    s
}

fn run(input: &[u8], cuts: &[usize], usage: bool) -> String {
    let mut t = StreamTranslator::new(usage);
    let mut out = Vec::new();
    let mut from = 0;
    for &cut in cuts {
        out.extend(t.push(&input[from..cut]));
        from = cut;
    }
    out.extend(t.push(&input[from..]));
    out.extend(t.finish());
    assert!(t.finish().is_empty() && t.push(b"data: {}\n\n").is_empty(), "input after the end is ignored");
    String::from_utf8(out).unwrap()
}

/// Every event is `data: …\n\n`, JSON or the one final `[DONE]`.
fn check_events(out: &str) -> Vec<Value> {
    assert!(out.ends_with("data: [DONE]\n\n"), "{out}");
    assert_eq!(out.matches("[DONE]").count(), 1, "{out}");
    let body = out.strip_suffix("\n\n").unwrap();
    let events: Vec<&str> = body.split("\n\n").collect();
    let (last, rest) = events.split_last().unwrap();
    assert_eq!(*last, "data: [DONE]");
    rest.iter()
        .map(|e| {
            let data = e.strip_prefix("data: ").unwrap_or_else(|| panic!("not a data event: {e:?}"));
            assert!(!data.contains('\n'));
            serde_json::from_str(data).unwrap_or_else(|err| panic!("{err}: {data}"))
        })
        .collect()
}

#[test]
fn recorded_stream_translates_exactly() {
    for usage in [false, true] {
        let out = run(RECORDED.as_bytes(), &[], usage);
        assert_eq!(out, expected(usage), "include_usage {usage}");
        let events = check_events(&out);
        // What a client assembles from it.
        let text: String = events.iter().filter_map(|e| e["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, "I'll check the weather in \"Zürich\"\n");
        let args: String = events
            .iter()
            .filter_map(|e| e["choices"][0]["delta"]["tool_calls"][0].as_object())
            .filter(|c| c["index"] == 0)
            .filter_map(|c| c["function"]["arguments"].as_str())
            .collect();
        assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), json!({"city": "Zürich"}));
        for e in &events {
            assert_eq!(e.get("usage").is_some(), usage, "{e}");
        }
    }
}

#[test]
fn every_split_point_gives_the_same_output() {
    let input = RECORDED.as_bytes();
    for usage in [false, true] {
        let whole = run(input, &[], usage);
        for cut in 0..=input.len() {
            assert_eq!(run(input, &[cut], usage), whole, "cut at {cut}");
        }
        let every_byte: Vec<usize> = (1..input.len()).collect();
        assert_eq!(run(input, &every_byte, usage), whole);
    }
    // Three pieces, a coarser grid.
    let whole = run(input, &[], false);
    for a in (0..input.len()).step_by(37) {
        for b in (a..input.len()).step_by(53) {
            assert_eq!(run(input, &[a, b], false), whole, "cuts {a} {b}");
        }
    }
}

#[test]
fn line_endings_do_not_matter() {
    let want = expected(false);
    let crlf = RECORDED.replace('\n', "\r\n");
    let cr = RECORDED.replace('\n', "\r");
    for input in [crlf, cr] {
        assert_eq!(run(input.as_bytes(), &[], false), want);
        for cut in 0..=input.len() {
            assert_eq!(run(input.as_bytes(), &[cut], false), want, "cut at {cut}");
        }
    }
}

#[test]
fn last_event_without_blank_line_and_comments() {
    let input = RECORDED.trim_end().replace("event: ping\n", ": keep-alive\nid: 7\nretry: 100\nevent: ping\n");
    assert_eq!(run(input.as_bytes(), &[], false), expected(false));
    // Multi-line data and no space after the colon.
    let multi = "data:{\"type\":\"message_start\",\n\
                 data:\"message\":{\"id\":\"m\",\"model\":\"c\"}}\n\n\
                 data:{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\n";
    let out = run(multi.as_bytes(), &[], false);
    let events = check_events(&out);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["id"], "m");
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(events[1]["choices"][0]["finish_reason"], "stop");
}

fn first_events(n: usize) -> String {
    RECORDED.split("\n\n").take(n).map(|e| format!("{e}\n\n")).collect()
}

#[test]
fn error_event_ends_the_stream() {
    let input = first_events(4)
        + "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n"
        + &first_events(20);
    for cut in 0..=input.len() {
        let out = run(input.as_bytes(), &[cut], false);
        let events = check_events(&out);
        assert_eq!(events.len(), 3, "{out}");
        assert_eq!(events[1]["choices"][0]["delta"]["content"], "I");
        assert_eq!(
            events[2],
            json!({"error": {"message": "Overloaded", "type": "server_error", "param": null, "code": "overloaded_error"}})
        );
    }
    // An error event whose data is not JSON still reports an error.
    let out = run(b"event: error\ndata: upstream exploded\n\n", &[], true);
    let events = check_events(&out);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["error"]["message"], "Anthropic stream error: upstream exploded");
    assert_eq!(events[0]["error"]["type"], "server_error");
    // As a first and only event, with include_usage.
    let out = run(
        b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow\"}}\n\n",
        &[],
        true,
    );
    assert_eq!(check_events(&out)[0]["error"]["type"], "rate_limit_error");
}

#[test]
fn truncated_streams() {
    // Cut before message_delta: the client learns the stream broke.
    let out = run(first_events(5).as_bytes(), &[], true);
    let events = check_events(&out);
    assert_eq!(events.last().unwrap()["error"]["code"], "stream_truncated");
    assert!(events.iter().all(|e| e.get("choices").is_none_or(|c| !c.as_array().unwrap().is_empty())));
    // Nothing at all.
    let out = run(b"", &[], false);
    assert_eq!(check_events(&out)[0]["error"]["code"], "stream_truncated");
    // message_delta came, message_stop did not: a normal end, with usage.
    let upto_delta: String = RECORDED.split("event: message_stop").next().unwrap().to_string();
    assert_eq!(run(upto_delta.as_bytes(), &[], true), expected(true));
    // message_stop without a stop_reason before it: finish_reason "stop".
    let out = run(
        b"data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\"}}\n\ndata: {\"type\":\"message_stop\"}\n\n",
        &[],
        false,
    );
    let events = check_events(&out);
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["choices"][0]["finish_reason"], "stop");
}

#[test]
fn junk_is_skipped() {
    let input = first_events(1)
        + "data: not json\n\n"
        + "data: {\"type\":\"content_block_delta\",\"index\":\"zero\"}\n\n"
        + "data: {\"type\":\"content_block_delta\",\"index\":9,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"x\"}}\n\n"
        + "data: {\"type\":\"content_block_start\",\"index\":5,\"content_block\":{\"type\":\"server_tool_use\",\"id\":\"s\"}}\n\n"
        + "data: {\"type\":\"something_new\"}\n\n"
        + "event: message_stop\n\n"
        + "data: {\"type\":\"message_stop\"}\n\n";
    let out = run(input.as_bytes(), &[], false);
    let events = check_events(&out);
    assert_eq!(events.len(), 2, "{out}");
    assert_eq!(events[1]["choices"][0]["finish_reason"], "stop");
}

#[test]
fn oversized_lines_end_the_stream() {
    let mut input = first_events(1).into_bytes();
    input.extend(b"data: \"");
    input.extend(std::iter::repeat_n(b'x', MAX_EVENT_BYTES));
    let whole = run(&input, &[], false);
    let split = run(&input, &[input.len() / 2, input.len() - 10], false);
    assert_eq!(whole, split);
    let events = check_events(&whole);
    assert_eq!(events.last().unwrap()["error"]["code"], "stream_event_too_large");
}

/// The text-delta fast path writes byte for byte what the full parse writes: the same events
/// in a form the fast path refuses (a space after the first colon) give the same output, for
/// plain, multi-byte, escaped, empty and malformed texts and indexes.
#[test]
fn the_text_delta_fast_path_equals_the_full_parse() {
    let start =
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\",\"model\":\"c\"}}\n\n";
    let texts = [
        r#""Hello""#,
        r#"" world, 42 ü 日本 🎉""#,
        r#""a\"b""#,
        r#""line\nbreak""#,
        r#""\u00e9\/""#,
        r#""""#,
        r#""x","extra":1"#,
        "\"tab\there\"",
        r#"5"#,
    ];
    for index in ["0", "7", "12", "01", "-1", "x"] {
        for text in texts {
            let fast = format!(
                "{start}data: {{\"type\":\"content_block_delta\",\"index\":{index},\"delta\":{{\"type\":\"text_delta\",\"text\":{text}}}}}\n\n"
            );
            let slow = fast.replacen("{\"type\":\"content_block_delta\"", "{\"type\": \"content_block_delta\"", 1);
            assert_ne!(fast, slow);
            let run = |s: &str| {
                let mut t = StreamTranslator::new(true);
                let mut out = t.push(s.as_bytes());
                out.extend(t.finish());
                String::from_utf8(out).unwrap()
            };
            assert_eq!(run(&fast), run(&slow), "index {index} text {text}");
            // The plain ones really take the fast path.
            let data = fast.lines().nth(3).unwrap().strip_prefix("data: ").unwrap();
            let plain = ["0", "7", "12"].contains(&index) && [texts[0], texts[1]].contains(&text);
            assert_eq!(
                crate::translate::anthropic::stream::plain_text_delta(data.as_bytes()).is_some(),
                plain,
                "{data}"
            );
        }
    }
}
