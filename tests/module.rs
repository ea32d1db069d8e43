//! The shipped module's contract with the host, read from the `.wasm` itself: what it exports
//! is what Envoy calls (proxy-wasm-cpp-host skips every callback a module does not export),
//! and what it imports is all it may ask of the host.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeSet;

/// An unsigned LEB128 at `*at`.
fn leb(b: &[u8], at: &mut usize) -> u64 {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let byte = b[*at];
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

fn name(b: &[u8], at: &mut usize) -> String {
    let n = leb(b, at) as usize;
    let s = String::from_utf8(b[*at..*at + n].to_vec()).unwrap();
    *at += n;
    s
}

/// (exports, imports as `module.name`) of a wasm binary.
fn interface(b: &[u8]) -> (BTreeSet<String>, BTreeSet<String>) {
    assert_eq!(&b[..8], b"\0asm\x01\0\0\0", "not a wasm 1 module");
    let (mut exports, mut imports) = (BTreeSet::new(), BTreeSet::new());
    let mut at = 8;
    while at < b.len() {
        let id = b[at];
        at += 1;
        let size = leb(b, &mut at) as usize;
        let end = at + size;
        let mut p = at;
        match id {
            2 => {
                for _ in 0..leb(b, &mut p) {
                    let m = name(b, &mut p);
                    let n = name(b, &mut p);
                    imports.insert(format!("{m}.{n}"));
                    match b[p] {
                        0 => {
                            p += 1;
                            leb(b, &mut p);
                        }
                        kind => panic!("import {m}.{n} of kind {kind}: only functions are expected"),
                    }
                }
            }
            7 => {
                for _ in 0..leb(b, &mut p) {
                    exports.insert(name(b, &mut p));
                    p += 1;
                    leb(b, &mut p);
                }
            }
            _ => {}
        }
        at = end;
    }
    (exports, imports)
}

#[test]
fn the_module_exports_exactly_the_callbacks_it_handles() {
    let path = common::wasm_path();
    let b = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run `make wasm`)", path.display()));
    let (exports, imports) = interface(&b);
    let want: BTreeSet<String> = [
        "memory",
        "_initialize",
        "proxy_abi_version_0_2_1",
        "proxy_on_memory_allocate",
        "proxy_on_context_create",
        "proxy_on_vm_start",
        "proxy_on_configure",
        "proxy_on_tick",
        "proxy_on_http_call_response",
        "proxy_on_request_headers",
        "proxy_on_request_body",
        "proxy_on_request_trailers",
        "proxy_on_response_headers",
        "proxy_on_response_body",
        "proxy_on_done",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // No `proxy_on_log` / `proxy_on_delete` (a request ends in `proxy_on_done`: two VM entries
    // per context fewer), no network-filter or gRPC callbacks: Envoy calls none of them.
    assert_eq!(exports, want, "exports of {}", path.display());
    // Everything asked of the host is proxy-wasm's `env` or the WASI calls std needs.
    let foreign: Vec<&String> =
        imports.iter().filter(|i| !i.starts_with("env.proxy_") && !i.starts_with("wasi_snapshot_preview1.")).collect();
    assert!(foreign.is_empty(), "unexpected imports: {foreign:?}");
    assert!(imports.contains("env.proxy_http_call"), "scheduled prompts call out: {imports:?}");
}

/// Drive the module's entry points in node's V8 with a host that knows nothing (every host
/// call answers NotFound): what Envoy would never send — callbacks for contexts that do not
/// exist, requests under a root that was never configured, an empty configuration — must pass
/// or be refused, never trap. (The SDK's dispatcher panicked on an unknown context id.)
#[test]
fn surprises_from_the_host_pass_instead_of_trapping() {
    let path = common::wasm_path();
    let script = r#"
const fs = require('fs');
const m = new WebAssembly.Module(fs.readFileSync(process.argv[1]));
const logs = [];
let mem;
const env = {};
for (const i of WebAssembly.Module.imports(m)) {
  if (i.kind !== 'function') continue;
  if (i.module === 'env' && i.name === 'proxy_log') {
    env[i.name] = (level, p, l) => { logs.push(level + ' ' + Buffer.from(mem.buffer, p, l).toString()); return 0; };
  } else if (i.module === 'env') {
    env[i.name] = () => 1;
  }
}
const wasi = {};
for (const i of WebAssembly.Module.imports(m)) {
  if (i.module === 'wasi_snapshot_preview1') wasi[i.name] = () => 0;
}
const x = new WebAssembly.Instance(m, { env, wasi_snapshot_preview1: wasi }).exports;
mem = x.memory;
x._initialize();
const out = {};
out.unknown_headers = x.proxy_on_request_headers(7, 3, 0);
out.unknown_body = x.proxy_on_request_body(7, 10, 1);
out.unknown_trailers = x.proxy_on_request_trailers(7, 1);
out.unknown_response = x.proxy_on_response_headers(7, 3, 0);
out.unknown_response_body = x.proxy_on_response_body(7, 10, 1);
out.unknown_done = x.proxy_on_done(7);
x.proxy_on_tick(99);
x.proxy_on_http_call_response(99, 1, 0, 0, 0);
x.proxy_on_context_create(1, 0);
out.vm_start = x.proxy_on_vm_start(1, 0);
out.empty_config = x.proxy_on_configure(1, 0);
x.proxy_on_tick(1);
x.proxy_on_context_create(8, 1);
out.unconfigured_headers = x.proxy_on_request_headers(8, 3, 1);
out.unconfigured_done = x.proxy_on_done(8);
out.root_done = x.proxy_on_done(1);
out.root_done_again = x.proxy_on_done(1);
out.logs = logs;
console.log(JSON.stringify(out));
"#;
    let o = std::process::Command::new("node")
        .args(["--no-warnings", "-e", script])
        .arg(&path)
        .output()
        .expect("node (make installs it for wasm-opt)");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "the module trapped or node failed: {}\n{stdout}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for k in [
        "unknown_headers",
        "unknown_body",
        "unknown_trailers",
        "unknown_response",
        "unknown_response_body",
        "unconfigured_headers",
    ] {
        assert_eq!(v[k], 0, "{k}: Continue expected: {v}");
    }
    for k in ["unknown_done", "unconfigured_done", "root_done", "root_done_again", "vm_start"] {
        assert_eq!(v[k], 1, "{k}: {v}");
    }
    assert_eq!(v["empty_config"], 0, "an empty configuration is refused: {v}");
    let logs = v["logs"].to_string();
    assert!(logs.contains("rejected configuration: the plugin configuration is empty"), "{logs}");
}
