//! Packs a proxy-wasm module as an OCI image, the format Istio's `WasmPlugin` and Envoy
//! Gateway's `EnvoyExtensionPolicy` (`code.type: Image`) pull, and writes it as an OCI image
//! layout directory (`oci-layout`, `index.json`, `blobs/sha256/…`) — no container engine, no
//! network. Push the layout with `skopeo copy oci:DIR:TAG docker://REGISTRY/NAME:TAG` (or
//! `oras cp --from-oci-layout`).
//!
//! Two variants, both understood by the image fetcher Istio and Envoy Gateway share
//! (istio `pkg/wasm/imagefetcher.go`, gateway `internal/wasm/imagefetcher.go`), which
//! implements Solo.io's "Wasm Image Specification":
//!
//! * [`Variant::Compat`] (default): one `application/vnd.oci.image.layer.v1.tar+gzip` layer,
//!   a gzipped tar holding `plugin.wasm` at its root, an ordinary OCI image config, and the
//!   manifest annotation `module.wasm.image/variant: compat` the spec asks for. Any registry
//!   and any OCI tool handle it like a container image.
//! * [`Variant::Oci`]: the artifact variant — the raw module as an
//!   `application/vnd.module.wasm.content.layer.v1+wasm` layer next to an
//!   `application/vnd.module.wasm.config.v1+json` runtime-config layer (the fetchers require
//!   exactly two layers for this variant), with the runtime config as the manifest's config.
//!
//! Output is reproducible: the tar entry has fixed mode/uid/gid/mtime and no user names, the
//! gzip header has mtime 0 and OS "unknown", JSON is written compactly with a fixed key order
//! and no timestamps. The same module and tags always give the same manifest digest (as long
//! as the locked `flate2`/`miniz_oxide` versions are unchanged: the compressed bytes come from
//! them).

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_TYPE_WASM_CONFIG: &str = "application/vnd.module.wasm.config.v1+json";
pub const MEDIA_TYPE_WASM_CONTENT: &str = "application/vnd.module.wasm.content.layer.v1+wasm";

/// The file name the compat variant's fetchers look for inside the layer.
pub const PLUGIN_FILE: &str = "plugin.wasm";
/// Manifest annotation the compat spec requires for the OCI layer media type.
pub const VARIANT_ANNOTATION: &str = "module.wasm.image/variant";
/// `index.json` annotation naming a tag (what `skopeo … oci:DIR:TAG` resolves).
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";

/// Mode, owner and timestamp of the tar entry: fixed, so the layer is reproducible.
const TAR_MODE: u64 = 0o644;
const TAR_MTIME: u64 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Compat,
    Oci,
}

impl Variant {
    pub fn parse(s: &str) -> Option<Variant> {
        match s {
            "compat" => Some(Variant::Compat),
            "oci" => Some(Variant::Oci),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Variant::Compat => "compat",
            Variant::Oci => "oci",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error(e.to_string())
    }
}

/// A content-addressed blob.
#[derive(Debug, Clone)]
pub struct Blob {
    /// `sha256:<hex>`.
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(bytes: Vec<u8>) -> Blob {
        Blob { digest: sha256_digest(&bytes), bytes }
    }

    fn hex(&self) -> &str {
        self.digest.strip_prefix("sha256:").unwrap_or(&self.digest)
    }

    fn descriptor(&self, media_type: &str) -> Value {
        json!({ "mediaType": media_type, "digest": self.digest, "size": self.bytes.len() })
    }
}

/// A built image: its blobs (config, layers, manifest) and the layout's `index.json`.
#[derive(Debug, Clone)]
pub struct Image {
    pub variant: Variant,
    pub manifest: Blob,
    /// Every blob the layout holds, manifest included, each once.
    pub blobs: Vec<Blob>,
    pub index_json: Vec<u8>,
}

/// `sha256:<lowercase hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// A Docker/OCI tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() || c == '_' => {}
        _ => return false,
    }
    tag.len() <= 128 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
}

/// The checks Istio's fetcher applies to what it extracts (magic number and version, 8 bytes).
pub fn check_wasm(wasm: &[u8]) -> Result<(), Error> {
    match wasm.get(..4) {
        Some(b"\0asm") if wasm.len() >= 8 => Ok(()),
        _ => Err(Error("the module is not WebAssembly (it must start with the bytes \\0asm and a version)".into())),
    }
}

/// Build the image for `wasm`, tagged with every name in `tags` (at least one).
pub fn build(wasm: &[u8], tags: &[String], variant: Variant) -> Result<Image, Error> {
    check_wasm(wasm)?;
    if tags.is_empty() {
        return Err(Error("at least one tag is required".into()));
    }
    if let Some(bad) = tags.iter().find(|t| !valid_tag(t)) {
        return Err(Error(format!("invalid tag {bad:?} (allowed: [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})")));
    }

    let (manifest, blobs) = match variant {
        Variant::Compat => compat(wasm)?,
        Variant::Oci => oci(wasm)?,
    };
    let manifest = Blob::new(to_json(&manifest)?);

    let entries: Vec<Value> = tags
        .iter()
        .map(|tag| {
            json!({
                "mediaType": MEDIA_TYPE_MANIFEST,
                "digest": manifest.digest,
                "size": manifest.bytes.len(),
                "annotations": { REF_NAME_ANNOTATION: tag },
            })
        })
        .collect();
    let index = json!({ "schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": entries });

    let mut all = blobs;
    all.push(manifest.clone());
    all.sort_by(|a, b| a.digest.cmp(&b.digest));
    all.dedup_by(|a, b| a.digest == b.digest);
    Ok(Image { variant, manifest, blobs: all, index_json: to_json(&index)? })
}

fn compat(wasm: &[u8]) -> Result<(Value, Vec<Blob>), Error> {
    let tar = tar_single_file(PLUGIN_FILE, wasm)?;
    let diff_id = sha256_digest(&tar);
    let layer = Blob::new(gzip(&tar)?);
    // A minimal OCI image config: no `created`, so it stays reproducible. os/architecture use
    // the Go GOOS/GOARCH spelling the image spec refers to (wasip1/wasm).
    let config = Blob::new(to_json(&json!({
        "architecture": "wasm",
        "os": "wasip1",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    }))?);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": config.descriptor(MEDIA_TYPE_IMAGE_CONFIG),
        "layers": [layer.descriptor(MEDIA_TYPE_LAYER_TAR_GZIP)],
        "annotations": { VARIANT_ANNOTATION: "compat" },
    });
    Ok((manifest, vec![config, layer]))
}

fn oci(wasm: &[u8]) -> Result<(Value, Vec<Blob>), Error> {
    // Solo.io's runtime config for Envoy. The filter registers its root context without a
    // root id, so the only root id is the empty one.
    let runtime = Blob::new(to_json(&json!({
        "type": "envoy_proxy",
        "abiVersions": ["proxy_abi_version_0_2_1"],
        "config": { "root_ids": [""] },
    }))?);
    let content = Blob::new(wasm.to_vec());
    let mut runtime_layer = runtime.descriptor(MEDIA_TYPE_WASM_CONFIG);
    let mut content_layer = content.descriptor(MEDIA_TYPE_WASM_CONTENT);
    annotate(&mut runtime_layer, TITLE_ANNOTATION, "runtime-config.json");
    annotate(&mut content_layer, TITLE_ANNOTATION, PLUGIN_FILE);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": runtime.descriptor(MEDIA_TYPE_WASM_CONFIG),
        "layers": [runtime_layer, content_layer],
    });
    Ok((manifest, vec![runtime, content]))
}

fn annotate(descriptor: &mut Value, key: &str, value: &str) {
    if let Some(obj) = descriptor.as_object_mut() {
        obj.insert("annotations".into(), json!({ key: value }));
    }
}

fn to_json(v: &Value) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(v).map_err(|e| Error(format!("JSON: {e}")))
}

/// A ustar archive holding one regular file `name` at its root: fixed mode 0644, uid/gid 0, no
/// user/group names, mtime 0; ends with the two zero blocks.
pub fn tar_single_file(name: &str, data: &[u8]) -> Result<Vec<u8>, Error> {
    let mut h = [0u8; 512];
    put(&mut h, 0, 100, name.as_bytes())?; // name
    put_octal(&mut h, 100, 8, TAR_MODE)?; // mode
    put_octal(&mut h, 108, 8, 0)?; // uid
    put_octal(&mut h, 116, 8, 0)?; // gid
    put_octal(&mut h, 124, 12, data.len() as u64)?; // size
    put_octal(&mut h, 136, 12, TAR_MTIME)?; // mtime
    put(&mut h, 148, 8, b"        ")?; // checksum, counted as spaces
    put(&mut h, 156, 1, b"0")?; // typeflag: regular file
    put(&mut h, 257, 6, b"ustar\0")?; // magic
    put(&mut h, 263, 2, b"00")?; // version
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    put(&mut h, 148, 8, format!("{sum:06o}\0 ").as_bytes())?;

    let padded = data.len().div_ceil(512) * 512;
    let mut out = Vec::with_capacity(512 + padded + 1024);
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out.resize(512 + padded + 1024, 0);
    Ok(out)
}

fn put(h: &mut [u8; 512], offset: usize, len: usize, bytes: &[u8]) -> Result<(), Error> {
    if bytes.len() > len {
        return Err(Error(format!("tar header field at {offset} too long ({} > {len} bytes)", bytes.len())));
    }
    let field = h
        .get_mut(offset..offset + bytes.len())
        .ok_or_else(|| Error(format!("tar header field at {offset} out of range")))?;
    field.copy_from_slice(bytes);
    Ok(())
}

/// A NUL-terminated, zero-padded octal number filling a `len`-byte field.
fn put_octal(h: &mut [u8; 512], offset: usize, len: usize, value: u64) -> Result<(), Error> {
    let digits = format!("{value:0width$o}\0", width = len - 1);
    if digits.len() > len {
        return Err(Error(format!("value {value} does not fit a {len}-byte tar field")));
    }
    put(h, offset, len, digits.as_bytes())
}

/// Gzip with a fixed header (mtime 0, no file name, OS 255 "unknown"), best compression.
pub fn gzip(data: &[u8]) -> Result<Vec<u8>, Error> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::with_capacity(data.len() / 2), flate2::Compression::best());
    enc.write_all(data)?;
    Ok(enc.finish()?)
}

/// Write `image` as an OCI image layout at `out`. A previous layout there is replaced (its
/// `blobs/`, `index.json` and `oci-layout`); a non-empty directory that is not a layout is
/// refused rather than overwritten.
pub fn write_layout(image: &Image, out: &Path) -> Result<(), Error> {
    if out.exists() {
        let is_layout = out.join("oci-layout").is_file();
        let empty = fs::read_dir(out)?.next().is_none();
        if !is_layout && !empty {
            return Err(Error(format!(
                "{} exists and is not an OCI image layout (no oci-layout file); refusing to overwrite it",
                out.display()
            )));
        }
        if is_layout {
            for name in ["index.json", "oci-layout"] {
                let p = out.join(name);
                if p.exists() {
                    fs::remove_file(p)?;
                }
            }
            let blobs = out.join("blobs");
            if blobs.exists() {
                fs::remove_dir_all(blobs)?;
            }
        }
    }
    let dir = out.join("blobs").join("sha256");
    fs::create_dir_all(&dir)?;
    for blob in &image.blobs {
        fs::write(dir.join(blob.hex()), &blob.bytes)?;
    }
    fs::write(out.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    // Last, so an interrupted run never leaves an index pointing at missing blobs.
    fs::write(out.join("index.json"), &image.index_json)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert!(valid_tag("0.1.0"));
        assert!(valid_tag("latest"));
        assert!(valid_tag("_x-1.2"));
        assert!(!valid_tag(""));
        assert!(!valid_tag(".x"));
        assert!(!valid_tag("a/b"));
        assert!(!valid_tag("a:b"));
        assert!(!valid_tag(&"a".repeat(129)));
    }

    #[test]
    fn wasm_magic() {
        assert!(check_wasm(b"\0asm\x01\0\0\0").is_ok());
        assert!(check_wasm(b"\0asm").is_err());
        assert!(check_wasm(b"MZ\0\0\0\0\0\0").is_err());
        assert!(check_wasm(b"").is_err());
    }

    #[test]
    fn tar_header_checksum_and_layout() {
        let tar = tar_single_file("plugin.wasm", b"hello").unwrap();
        assert_eq!(tar.len(), 512 + 512 + 1024);
        let h = &tar[..512];
        assert_eq!(&h[..11], b"plugin.wasm");
        assert_eq!(&h[124..136], b"00000000005\0");
        assert_eq!(&h[257..263], b"ustar\0");
        let stored = u64::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap();
        let mut copy = h.to_vec();
        copy[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, copy.iter().map(|&b| u64::from(b)).sum::<u64>());
        assert_eq!(&tar[512..517], b"hello");
        assert!(tar[517..].iter().all(|&b| b == 0));
    }

    #[test]
    fn names_that_do_not_fit_are_errors() {
        assert!(tar_single_file(&"x".repeat(101), b"").is_err());
    }

    #[test]
    fn gzip_header_is_fixed() {
        let gz = gzip(b"abc").unwrap();
        // magic, deflate, no flags, mtime 0, xfl, OS 255
        assert_eq!(&gz[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&gz[4..8], &[0, 0, 0, 0]);
        assert_eq!(gz[9], 255);
    }

    #[test]
    fn build_rejects_bad_input() {
        let wasm = b"\0asm\x01\0\0\0".to_vec();
        assert!(build(&wasm, &[], Variant::Compat).is_err());
        assert!(build(&wasm, &["bad tag".into()], Variant::Compat).is_err());
        assert!(build(b"not wasm", &["t".into()], Variant::Compat).is_err());
    }

    #[test]
    fn blobs_are_unique_and_include_the_manifest() {
        let wasm = b"\0asm\x01\0\0\0".to_vec();
        for variant in [Variant::Compat, Variant::Oci] {
            let img = build(&wasm, &["a".into(), "b".into()], variant).unwrap();
            let digests: Vec<&str> = img.blobs.iter().map(|b| b.digest.as_str()).collect();
            let mut dedup = digests.clone();
            dedup.dedup();
            assert_eq!(digests, dedup);
            assert!(digests.contains(&img.manifest.digest.as_str()));
            assert_eq!(img.blobs.len(), 3, "{variant:?}: config, layer(s), manifest");
        }
    }
}
