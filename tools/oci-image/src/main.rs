//! `oci-image --wasm FILE --out DIR --tag TAG [--tag TAG…] [--variant compat|oci]`
//!
//! Writes an OCI image layout holding the module (see the library docs for the format) and
//! prints the manifest digest (`sha256:…`) on stdout; a summary goes to stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use oci_image::{build, write_layout, Variant};

const USAGE: &str = "usage: oci-image --wasm FILE --out DIR --tag TAG [--tag TAG...] [--variant compat|oci]

Packs a proxy-wasm module as an OCI image layout (Istio WasmPlugin / Envoy Gateway
EnvoyExtensionPolicy format) and prints the manifest digest.

  --wasm FILE       the module (must start with \\0asm)
  --out DIR         the layout directory (created; a previous layout there is replaced)
  --tag TAG         tag recorded in index.json (repeatable; at least one)
  --variant V       compat (default): one tar+gzip layer holding plugin.wasm
                    oci: Solo.io wasm artifact (module.wasm content + config layers)

Push with:  skopeo copy oci:DIR:TAG docker://REGISTRY/NAME:TAG";

struct Args {
    wasm: PathBuf,
    out: PathBuf,
    tags: Vec<String>,
    variant: Variant,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut wasm = None;
    let mut out = None;
    let mut tags = Vec::new();
    let mut variant = Variant::Compat;
    while let Some(arg) = argv.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let mut value = || inline.clone().or_else(|| argv.next()).ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--wasm" => wasm = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--tag" => tags.push(value()?),
            "--variant" => {
                let v = value()?;
                variant = Variant::parse(&v).ok_or_else(|| format!("--variant {v:?}: expected compat or oci"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(Args {
        wasm: wasm.ok_or("--wasm is required")?,
        out: out.ok_or("--out is required")?,
        tags: if tags.is_empty() { return Err("at least one --tag is required".into()) } else { tags },
        variant,
    }))
}

fn run() -> Result<(), String> {
    let Some(args) = parse(std::env::args().skip(1))? else {
        println!("{USAGE}");
        return Ok(());
    };
    let wasm = std::fs::read(&args.wasm).map_err(|e| format!("{}: {e}", args.wasm.display()))?;
    let image = build(&wasm, &args.tags, args.variant).map_err(|e| format!("{}: {e}", args.wasm.display()))?;
    write_layout(&image, &args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    eprintln!(
        "oci-image: {} ({} bytes) -> {} [{} variant, tags: {}]",
        args.wasm.display(),
        wasm.len(),
        args.out.display(),
        image.variant.name(),
        args.tags.join(", ")
    );
    println!("{}", image.manifest.digest);
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oci-image: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
