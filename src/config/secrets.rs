//! `${ secrets:NAME }` (and `${ env:NAME }`) references, resolved from the VM's environment
//! (Envoy `vm_config.environment_variables`). A resolved value lives in a [`Secret`], whose
//! `Debug` never shows it.

use std::fmt;

/// A resolved secret (or any value that came from one). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    /// The raw value, for the one place that sets it on a request header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Substitute every `${ secrets:NAME }` / `${ env:NAME }` in `value`.
/// Errors name the reference, never a value.
pub fn resolve(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(rest.get(..start).unwrap_or(""));
        let after = rest.get(start + 2..).unwrap_or("");
        let end =
            after.find('}').ok_or_else(|| "unterminated `${` reference (expected `${ secrets:NAME }`)".to_string())?;
        let inner = after.get(..end).unwrap_or("").trim();
        let name = inner
            .strip_prefix("secrets:")
            .or_else(|| inner.strip_prefix("env:"))
            .map(str::trim)
            .ok_or_else(|| format!("unsupported reference `${{ {inner} }}` (expected `${{ secrets:NAME }}`)"))?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
            return Err(format!("invalid secret name in `${{ {inner} }}`"));
        }
        let v = env(name)
            .ok_or_else(|| format!("secret `{name}` is not set (add it to vm_config.environment_variables)"))?;
        out.push_str(&v);
        rest = after.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "KEY" => Some("sk-123".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn resolves_spice_syntax() {
        assert_eq!(resolve("${ secrets:KEY }", &env).unwrap(), "sk-123");
        assert_eq!(resolve("${secrets:KEY}", &env).unwrap(), "sk-123");
        assert_eq!(resolve("${ env:KEY }", &env).unwrap(), "sk-123");
        assert_eq!(resolve("Bearer ${ secrets:KEY }!", &env).unwrap(), "Bearer sk-123!");
        assert_eq!(resolve("plain", &env).unwrap(), "plain");
        assert_eq!(resolve("${ secrets:EMPTY }", &env).unwrap(), "");
    }

    #[test]
    fn errors_name_the_secret_not_a_value() {
        let e = resolve("${ secrets:MISSING }", &env).unwrap_err();
        assert!(e.contains("MISSING"), "{e}");
        assert!(resolve("${ secrets:KEY", &env).is_err());
        assert!(resolve("${ vault:KEY }", &env).is_err());
        assert!(resolve("${ secrets: }", &env).is_err());
        let e = resolve("${ secrets:KEY } ${ secrets:NOPE }", &env).unwrap_err();
        assert!(!e.contains("sk-123"));
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("sk-123".into())), "Secret(<redacted>)");
    }
}
