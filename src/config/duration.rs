//! Durations as users write them: `30s`, `250ms`, `1.5s`, `2m`, `1h`, or a bare number of
//! seconds.

use super::wire::Scalar;

/// Milliseconds, or a short reason.
pub fn parse_ms(v: &Scalar) -> Result<u64, String> {
    match v {
        Scalar::Int(i) if *i >= 0 => i.checked_mul(1000).and_then(|ms| u64::try_from(ms).ok()).ok_or_else(too_long),
        Scalar::Float(f) if f.is_finite() && *f >= 0.0 => secs_to_ms(*f),
        Scalar::Str(s) => parse_str(s.trim()),
        other => Err(format!("{} is not a duration (use e.g. 30s, 250ms, 2m)", other.describe())),
    }
}

fn too_long() -> String {
    "duration is too long".to_string()
}

fn secs_to_ms(secs: f64) -> Result<u64, String> {
    let ms = (secs * 1000.0).round();
    if ms > 1e15 {
        return Err(too_long());
    }
    // In range and non-negative: the cast is exact enough.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(ms as u64)
}

fn parse_str(s: &str) -> Result<u64, String> {
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a duration (use e.g. 30s, 250ms, 2m)"))?;
    let factor = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("unknown duration unit {other:?} in {s:?} (use ms, s, m, h)")),
    };
    secs_to_ms(n * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        let s = |x: &str| parse_ms(&Scalar::Str(x.into()));
        assert_eq!(s("30s"), Ok(30_000));
        assert_eq!(s("250ms"), Ok(250));
        assert_eq!(s("1.5s"), Ok(1500));
        assert_eq!(s("2m"), Ok(120_000));
        assert_eq!(s("1h"), Ok(3_600_000));
        assert_eq!(s("10"), Ok(10_000));
        assert_eq!(s(" 5 s "), Ok(5000));
        assert!(s("5 days").is_err());
        assert!(s("abc").is_err());
        assert!(s("-1s").is_err());
        assert!(s("").is_err());
        assert_eq!(parse_ms(&Scalar::Int(3)), Ok(3000));
        assert_eq!(parse_ms(&Scalar::Float(0.25)), Ok(250));
        assert!(parse_ms(&Scalar::Int(-3)).is_err());
        assert!(parse_ms(&Scalar::Bool(true)).is_err());
        assert!(parse_ms(&Scalar::Int(i64::MAX)).is_err());
    }
}
