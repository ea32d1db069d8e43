//! `model-workers`: a Spice file → the whole Envoy config (`envoy`), the filter's verdict on it
//! (`check`), or the live-reload files written into a directory Envoy watches (`apply`).
//! Native only; std-only argument parsing.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    mod apply;

    use std::io::{Read, Write};
    use std::process::ExitCode;

    use model_workers::generate::admin::Admin;
    use model_workers::generate::{self, Options};

    const USAGE: &str = "\
usage: model-workers envoy FILE [options]   print the Envoy bootstrap for a Spice file
       model-workers check FILE             what the filter says about it (exit 0: accepted, 1: rejected)
       model-workers apply FILE --dir DIR [options]
                                            live reload: check FILE, then write the filter config
                                            (ECDS), route (RDS) and clusters (CDS) into DIR, which
                                            a bootstrap made with `envoy --xds-dir DIR` watches

FILE is a Spice file (models: + workers: + model_workers:), or - for stdin.

envoy options:
  --listen HOST:PORT         listener address (an IP), default 0.0.0.0:10000
  --admin HOST:PORT|none     admin address (an IP), default 127.0.0.1:9901; none: no admin
  --wasm PATH                model_workers.wasm in Envoy's filesystem, default /etc/envoy/model_workers.wasm
  --cluster NAME=HOST:PORT   send cluster NAME to this plain-HTTP address instead of what the
                             models say (local servers, mocks); repeatable
  --env NAME=VALUE           write a secret's value into the config (key_values) instead of
                             reading it from Envoy's environment (host_env_keys); for demos and
                             tests only; repeatable
  --xds-dir DIR              live reload: load the filter config, the route and the clusters
                             from the files `apply` writes in DIR (Envoy's path to it)
  -o, --output OUT           write the config to OUT instead of stdout

apply options: --dir DIR (required), --wasm, --cluster, --env as for envoy, and
  --admin http://HOST:PORT   Envoy's admin: when the clusters change, wait until it reports
                             this version's clusters applied and warm before the filter config
                             and route may send requests to them (without it: wait --grace);
                             fails, restoring the previous clusters file and writing nothing
                             else, when Envoy rejects them or --warm-timeout passes; then, when
                             the filter config changed, wait until Envoy applied it, or (it
                             refused it: e.g. a secret its environment lacks) restore the
                             previous files and fail
  --warm-timeout DURATION    how long --admin waits, default 30s
  --grace DURATION           how long the clusters and routes this version drops are kept for
                             requests in flight (e.g. 500ms, 5s), and without --admin how long
                             new clusters get to warm, default 5s

check resolves `${ secrets:NAME }` from this process's environment, as Envoy's VM would;
apply from --env, then this process's environment, and writes nothing when check fails.
";

    /// `apply`'s default `--grace`.
    const DEFAULT_GRACE_MS: u64 = 5000;
    /// `apply`'s default `--warm-timeout`.
    const DEFAULT_WARM_TIMEOUT_MS: u64 = 30_000;
    /// How often `apply --admin` asks.
    const POLL_MS: u64 = 20;

    /// How `apply` waits for new clusters to warm.
    enum Warmup {
        /// A fixed time (`--grace`).
        Grace,
        /// Until Envoy's admin reports them warm, at most `timeout_ms`.
        Admin { admin: Admin, timeout_ms: u64 },
    }

    /// A usage error: exit 2 with the message and the usage text.
    struct Usage(String);

    enum Command {
        Help,
        Check { file: String },
        Envoy { file: String, opts: Options, out: Option<String> },
        Apply { file: String, opts: Options, grace_ms: u64, warmup: Warmup },
    }

    pub fn main() -> ExitCode {
        let args: Vec<String> = std::env::args().skip(1).collect();
        match parse(&args) {
            Err(Usage(msg)) => {
                eprintln!("model-workers: {msg}\n\n{USAGE}");
                ExitCode::from(2)
            }
            Ok(Command::Help) => {
                print!("{USAGE}");
                ExitCode::SUCCESS
            }
            Ok(Command::Check { file }) => check(&file),
            Ok(Command::Envoy { file, opts, out }) => envoy(&file, &opts, out.as_deref()),
            Ok(Command::Apply { file, opts, grace_ms, warmup }) => apply::apply(&file, &opts, grace_ms, &warmup),
        }
    }

    fn parse(args: &[String]) -> Result<Command, Usage> {
        let mut it = args.iter();
        let command = match it.next().map(String::as_str) {
            None => return Err(Usage("missing command".into())),
            Some("-h" | "--help" | "help") => return Ok(Command::Help),
            Some(c @ ("envoy" | "check" | "apply")) => c,
            Some(other) => return Err(Usage(format!("unknown command `{other}`"))),
        };
        let mut file: Option<String> = None;
        let mut opts = Options::default();
        let mut out = None;
        let mut grace_ms = DEFAULT_GRACE_MS;
        let mut admin_url: Option<Admin> = None;
        let mut warm_timeout_ms: Option<u64> = None;
        while let Some(arg) = it.next() {
            // `--flag=value` or `--flag value`.
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
                _ => (arg.as_str(), None),
            };
            let mut value = |name: &str| -> Result<String, Usage> {
                match inline.clone() {
                    Some(v) => Ok(v),
                    None => it.next().cloned().ok_or_else(|| Usage(format!("{name} needs a value"))),
                }
            };
            let only = |name: &str, commands: &[&str]| {
                if commands.contains(&command) {
                    Ok(())
                } else {
                    Err(Usage(format!("{name} is an option of `{}`, not `{command}`", commands.join("` and `"))))
                }
            };
            let envoy_only = |name: &str| only(name, &["envoy"]);
            let generating = |name: &str| only(name, &["envoy", "apply"]);
            match flag {
                "-h" | "--help" => return Ok(Command::Help),
                "--listen" => {
                    envoy_only(flag)?;
                    opts.listen = host_port(flag, &value(flag)?)?;
                }
                "--admin" if command == "apply" => {
                    let v = value(flag)?;
                    admin_url = Some(Admin::parse(&v).map_err(|e| Usage(format!("--admin {e}")))?);
                }
                "--admin" => {
                    only(flag, &["envoy", "apply"])?;
                    let v = value(flag)?;
                    opts.admin = if v == "none" { None } else { Some(host_port(flag, &v)?) };
                }
                "--warm-timeout" => {
                    only(flag, &["apply"])?;
                    let v = value(flag)?;
                    let ms = model_workers::config::parse_duration_ms(&v)
                        .map_err(|e| Usage(format!("--warm-timeout {v:?}: {e}")))?;
                    warm_timeout_ms = Some(ms);
                }
                "--wasm" => {
                    generating(flag)?;
                    opts.wasm = value(flag)?;
                }
                "--cluster" => {
                    generating(flag)?;
                    let v = value(flag)?;
                    // The address has no `=`: a cluster name may.
                    let (name, addr) = v
                        .rsplit_once('=')
                        .filter(|(n, _)| !n.is_empty())
                        .ok_or_else(|| Usage(format!("--cluster {v:?}: expected NAME=HOST:PORT")))?;
                    let addr = host_port(flag, addr)?;
                    if opts.cluster_addrs.insert(name.to_string(), addr).is_some() {
                        return Err(Usage(format!("--cluster {name} given twice")));
                    }
                }
                "--env" => {
                    generating(flag)?;
                    let v = value(flag)?;
                    let (name, val) = v
                        .split_once('=')
                        .filter(|(n, _)| !n.is_empty())
                        .ok_or_else(|| Usage("--env: expected NAME=VALUE".into()))?;
                    if opts.env.iter().any(|(k, _)| k == name) {
                        return Err(Usage(format!("--env {name} given twice")));
                    }
                    opts.env.push((name.to_string(), val.to_string()));
                }
                "--xds-dir" => {
                    envoy_only(flag)?;
                    opts.xds_dir = Some(value(flag)?);
                }
                "--dir" => {
                    only(flag, &["apply"])?;
                    opts.xds_dir = Some(value(flag)?);
                }
                "--grace" => {
                    only(flag, &["apply"])?;
                    let v = value(flag)?;
                    grace_ms = model_workers::config::parse_duration_ms(&v)
                        .map_err(|e| Usage(format!("--grace {v:?}: {e}")))?;
                }
                "-o" | "--output" => {
                    envoy_only(flag)?;
                    out = Some(value(flag)?);
                }
                f if f.starts_with('-') && f != "-" => return Err(Usage(format!("unknown option `{f}`"))),
                f => {
                    if file.replace(f.to_string()).is_some() {
                        return Err(Usage(format!("more than one FILE (`{f}`)")));
                    }
                }
            }
        }
        let file = file.ok_or_else(|| Usage(format!("`{command}` needs a FILE (or - for stdin)")))?;
        Ok(match command {
            "check" => Command::Check { file },
            "apply" => {
                if opts.xds_dir.is_none() {
                    return Err(Usage("`apply` needs --dir DIR".into()));
                }
                let warmup = match (admin_url, warm_timeout_ms) {
                    (Some(admin), t) => Warmup::Admin { admin, timeout_ms: t.unwrap_or(DEFAULT_WARM_TIMEOUT_MS) },
                    (None, Some(_)) => return Err(Usage("--warm-timeout needs --admin".into())),
                    (None, None) => Warmup::Grace,
                };
                Command::Apply { file, opts, grace_ms, warmup }
            }
            _ => Command::Envoy { file, opts, out },
        })
    }

    /// `HOST:PORT` or `[IPv6]:PORT` → (host without brackets, port > 0).
    fn host_port(flag: &str, s: &str) -> Result<(String, u16), Usage> {
        let bad = || Usage(format!("{flag} {s:?}: expected HOST:PORT (IPv6: [ADDR]:PORT)"));
        let (host, port) = match s.strip_prefix('[') {
            Some(rest) => {
                let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
                (h, p)
            }
            None => {
                let (h, p) = s.rsplit_once(':').ok_or_else(bad)?;
                if h.contains(':') {
                    return Err(bad());
                }
                (h, p)
            }
        };
        let port = port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?;
        if host.is_empty() {
            return Err(bad());
        }
        Ok((host.to_string(), port))
    }

    fn read(file: &str) -> Result<Vec<u8>, ExitCode> {
        let result = if file == "-" {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).map(|_| buf)
        } else {
            std::fs::read(file)
        };
        result.map_err(|e| {
            eprintln!("model-workers: cannot read {file}: {e}");
            ExitCode::FAILURE
        })
    }

    fn check(file: &str) -> ExitCode {
        let bytes = match read(file) {
            Ok(b) => b,
            Err(code) => return code,
        };
        match generate::check_bytes(&bytes, &|name| std::env::var(name).ok()) {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(line) => {
                println!("{line}");
                ExitCode::FAILURE
            }
        }
    }

    fn envoy(file: &str, opts: &Options, out: Option<&str>) -> ExitCode {
        let bytes = match read(file) {
            Ok(b) => b,
            Err(code) => return code,
        };
        let text = match generate::config_text(&bytes) {
            Ok(t) => t,
            Err(line) => {
                eprintln!("{line}");
                return ExitCode::FAILURE;
            }
        };
        let yaml = match generate::bootstrap(text, opts) {
            Ok(y) => y,
            Err(e) => {
                eprintln!("model-workers: {e}");
                return ExitCode::FAILURE;
            }
        };
        let written = match out {
            None | Some("-") => std::io::stdout().lock().write_all(yaml.as_bytes()),
            Some(path) => std::fs::write(path, yaml.as_bytes()),
        };
        match written {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("model-workers: cannot write {}: {e}", out.unwrap_or("stdout"));
                ExitCode::FAILURE
            }
        }
    }
}
