//! Runs the `oci-image` binary and checks what it wrote against the OCI image-layout and
//! image-manifest specs and the Wasm image spec Istio / Envoy Gateway pull — independently of
//! the library's own code: digests are recomputed, the layer is gunzipped and its tar parsed
//! by hand here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_oci-image");

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "oci-image-test-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn fake_wasm() -> Vec<u8> {
    // Magic + version, then 3000 bytes so the tar entry needs padding.
    let mut w = b"\0asm\x01\0\0\0".to_vec();
    w.extend((0..3000u32).map(|i| (i * 7 % 251) as u8));
    w
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// Build a layout; return the digest printed on stdout.
fn build(wasm: &Path, out: &Path, tags: &[&str], variant: Option<&str>) -> String {
    let mut args = vec!["--wasm", wasm.to_str().unwrap(), "--out", out.to_str().unwrap()];
    for t in tags {
        args.extend(["--tag", t]);
    }
    if let Some(v) = variant {
        args.extend(["--variant", v]);
    }
    let o = run(&args);
    assert!(o.status.success(), "oci-image failed: {}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8(o.stdout).unwrap();
    let digest = stdout.trim().to_string();
    assert!(digest.starts_with("sha256:") && digest.len() == 7 + 64, "stdout is the digest: {stdout:?}");
    digest
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

/// A descriptor's digest and size match the blob it names; returns the blob.
fn check_descriptor(layout: &Path, d: &Value, media_type: &str) -> Vec<u8> {
    assert_eq!(d["mediaType"], media_type, "{d}");
    let digest = d["digest"].as_str().unwrap();
    let bytes = blob(layout, digest);
    assert_eq!(sha256(&bytes), digest, "blob content matches its digest");
    assert_eq!(d["size"].as_u64().unwrap(), bytes.len() as u64, "descriptor size");
    bytes
}

/// `oci-layout`, `index.json` (one entry per tag, all naming the printed digest), every blob
/// named by its own digest and none unreferenced. Returns the manifest.
fn check_layout(layout: &Path, digest: &str, tags: &[&str], blob_count: usize) -> Value {
    assert_eq!(json(&fs::read(layout.join("oci-layout")).unwrap()), serde_json::json!({"imageLayoutVersion": "1.0.0"}));

    let index = json(&fs::read(layout.join("index.json")).unwrap());
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), tags.len());
    let mut names = Vec::new();
    for e in entries {
        assert_eq!(e["digest"], digest, "index → printed manifest digest");
        check_descriptor(layout, e, "application/vnd.oci.image.manifest.v1+json");
        names.push(e["annotations"]["org.opencontainers.image.ref.name"].as_str().unwrap().to_string());
    }
    assert_eq!(names, tags);

    let files: Vec<PathBuf> = fs::read_dir(layout.join("blobs/sha256")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), blob_count, "blobs: {files:?}");
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert_eq!(sha256(&fs::read(f).unwrap()), format!("sha256:{name}"), "blob {name} is content-addressed");
    }

    let manifest = json(&blob(layout, digest));
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    manifest
}

/// One tar entry parsed from a 512-byte ustar header.
struct TarEntry {
    name: String,
    mode: u64,
    uid: u64,
    gid: u64,
    mtime: u64,
    typeflag: u8,
    data: Vec<u8>,
}

fn octal(field: &[u8]) -> u64 {
    let s: String = field.iter().take_while(|&&b| b != 0 && b != b' ').map(|&b| b as char).collect();
    u64::from_str_radix(s.trim(), 8).unwrap()
}

fn parse_tar(tar: &[u8]) -> Vec<TarEntry> {
    assert_eq!(tar.len() % 512, 0, "tar is whole blocks");
    let mut entries = Vec::new();
    let mut pos = 0;
    loop {
        let h = &tar[pos..pos + 512];
        if h.iter().all(|&b| b == 0) {
            // End of archive: two zero blocks (and nothing but zeros after).
            assert!(tar[pos..].iter().all(|&b| b == 0));
            assert!(tar.len() - pos >= 1024, "two zero blocks end the archive");
            break;
        }
        let stored = octal(&h[148..156]);
        let sum: u64 =
            h.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u64::from(b) }).sum();
        assert_eq!(stored, sum, "header checksum");
        assert_eq!(&h[257..263], b"ustar\0");
        let name: String = h[..100].iter().take_while(|&&b| b != 0).map(|&b| b as char).collect();
        let size = octal(&h[124..136]) as usize;
        let data = tar[pos + 512..pos + 512 + size].to_vec();
        entries.push(TarEntry {
            name,
            mode: octal(&h[100..108]),
            uid: octal(&h[108..116]),
            gid: octal(&h[116..124]),
            mtime: octal(&h[136..148]),
            typeflag: h[156],
            data,
        });
        pos += 512 + size.div_ceil(512) * 512;
    }
    entries
}

/// Everything about a compat image: manifest, config, and a layer that is a gzipped tar with
/// exactly one entry, `plugin.wasm`, equal to the input.
fn check_compat(layout: &Path, digest: &str, tags: &[&str], wasm: &[u8]) {
    let manifest = check_layout(layout, digest, tags, 3);
    assert_eq!(manifest["annotations"]["module.wasm.image/variant"], "compat");
    let config = json(&check_descriptor(layout, &manifest["config"], "application/vnd.oci.image.config.v1+json"));
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "a single layer");
    let gz = check_descriptor(layout, &layers[0], "application/vnd.oci.image.layer.v1.tar+gzip");

    // Gzip header: magic, deflate, no flags, mtime 0.
    assert_eq!(&gz[..4], &[0x1f, 0x8b, 8, 0]);
    assert_eq!(&gz[4..8], &[0, 0, 0, 0], "gzip mtime is 0");
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut tar).unwrap();

    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!([sha256(&tar)]), "diff_id = uncompressed layer digest");
    assert_eq!(config["os"], "wasip1");
    assert_eq!(config["architecture"], "wasm");
    assert!(config.get("created").is_none(), "no timestamp in the config");

    let entries = parse_tar(&tar);
    assert_eq!(entries.len(), 1, "exactly one tar entry");
    let e = &entries[0];
    assert_eq!(e.name, "plugin.wasm");
    assert_eq!(e.typeflag, b'0', "regular file");
    assert_eq!((e.mode, e.uid, e.gid, e.mtime), (0o644, 0, 0, 0));
    assert!(e.data == wasm, "plugin.wasm holds the input module byte for byte");
}

#[test]
fn compat_image_of_a_fake_module() {
    let s = Scratch::new("compat");
    let wasm = fake_wasm();
    let input = s.0.join("fake.wasm");
    fs::write(&input, &wasm).unwrap();
    let out = s.0.join("layout");
    let digest = build(&input, &out, &["0.1.0", "latest"], None);
    check_compat(&out, &digest, &["0.1.0", "latest"], &wasm);
}

#[test]
fn output_is_reproducible() {
    let s = Scratch::new("repro");
    let wasm = fake_wasm();
    let input = s.0.join("fake.wasm");
    fs::write(&input, &wasm).unwrap();
    let (a, b) = (s.0.join("a"), s.0.join("b"));
    let da = build(&input, &a, &["1.0.0"], None);
    let db = build(&input, &b, &["1.0.0"], None);
    assert_eq!(da, db, "same input, same manifest digest");
    let listing = |dir: &Path| -> BTreeSet<(String, Vec<u8>)> {
        let mut files = BTreeSet::new();
        for sub in ["", "blobs/sha256"] {
            for e in fs::read_dir(dir.join(sub)).unwrap() {
                let p = e.unwrap().path();
                if p.is_file() {
                    files
                        .insert((format!("{sub}/{}", p.file_name().unwrap().to_str().unwrap()), fs::read(&p).unwrap()));
                }
            }
        }
        files
    };
    assert!(listing(&a) == listing(&b), "identical layouts, byte for byte");

    // Rebuilding over an existing layout replaces it (no stale blobs or tags).
    let again = build(&input, &a, &["2.0.0"], None);
    assert_eq!(again, da, "tags live in index.json only, not in the manifest");
    check_compat(&a, &again, &["2.0.0"], &wasm);

    // A different module gives a different image.
    let mut other = wasm.clone();
    other.push(1);
    fs::write(&input, &other).unwrap();
    assert_ne!(build(&input, &b, &["1.0.0"], None), da);
}

#[test]
fn oci_artifact_variant() {
    let s = Scratch::new("oci");
    let wasm = fake_wasm();
    let input = s.0.join("fake.wasm");
    fs::write(&input, &wasm).unwrap();
    let out = s.0.join("layout");
    let digest = build(&input, &out, &["0.1.0"], Some("oci"));
    // config (also the runtime-config layer) + content layer + manifest
    let manifest = check_layout(&out, &digest, &["0.1.0"], 3);
    let config = json(&check_descriptor(&out, &manifest["config"], "application/vnd.module.wasm.config.v1+json"));
    assert_eq!(config["type"], "envoy_proxy");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "Istio's and Envoy Gateway's fetchers require exactly two layers for this variant");
    check_descriptor(&out, &layers[0], "application/vnd.module.wasm.config.v1+json");
    let content = check_descriptor(&out, &layers[1], "application/vnd.module.wasm.content.layer.v1+wasm");
    assert!(content == wasm, "the content layer is the raw module");
    assert_eq!(build(&input, &s.0.join("again"), &["0.1.0"], Some("oci")), digest);
}

#[test]
fn real_module_when_built() {
    let path =
        std::env::var_os("MODEL_WORKERS_WASM").filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm32-wasip1/release/model_workers.wasm")
        });
    let Ok(wasm) = fs::read(&path) else {
        eprintln!("skipped: {} not built (make wasm)", path.display());
        return;
    };
    let s = Scratch::new("real");
    let out = s.0.join("layout");
    let digest = build(&path, &out, &["0.1.0"], None);
    check_compat(&out, &digest, &["0.1.0"], &wasm);
    assert_eq!(build(&path, &s.0.join("again"), &["0.1.0"], None), digest);
}

#[test]
fn refuses_bad_input_and_foreign_directories() {
    let s = Scratch::new("refuse");
    let input = s.0.join("fake.wasm");
    fs::write(&input, fake_wasm()).unwrap();

    // Not WebAssembly.
    let bogus = s.0.join("bogus.wasm");
    fs::write(&bogus, b"#!/bin/sh\necho hi\n").unwrap();
    let out = s.0.join("never");
    let o = run(&["--wasm", bogus.to_str().unwrap(), "--out", out.to_str().unwrap(), "--tag", "x"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not WebAssembly"));
    assert!(!out.exists(), "nothing written");

    // A directory with other content is not overwritten.
    let foreign = s.0.join("foreign");
    fs::create_dir_all(&foreign).unwrap();
    fs::write(foreign.join("keep.txt"), b"mine").unwrap();
    let o = run(&["--wasm", input.to_str().unwrap(), "--out", foreign.to_str().unwrap(), "--tag", "x"]);
    assert!(!o.status.success());
    assert_eq!(fs::read(foreign.join("keep.txt")).unwrap(), b"mine");
    assert!(!foreign.join("index.json").exists());

    // Missing tag, bad tag, bad variant, unknown flag.
    for args in [
        vec!["--wasm", input.to_str().unwrap(), "--out", out.to_str().unwrap()],
        vec!["--wasm", input.to_str().unwrap(), "--out", out.to_str().unwrap(), "--tag", "a/b"],
        vec!["--wasm", input.to_str().unwrap(), "--out", out.to_str().unwrap(), "--tag", "x", "--variant", "docker"],
        vec!["--wasm", input.to_str().unwrap(), "--out", out.to_str().unwrap(), "--tag", "x", "--push"],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(o.stdout.is_empty(), "no digest printed on failure");
    }
    assert!(!out.exists());
}
