//! Routing weights and other decimals of the config, exactly: `weight` (whole or with up to
//! [`MAX_WEIGHT_PLACES`] places, scaled to whole shares) and the text of a scalar in errors.

use super::build::MAX_WEIGHT_SUM;
use super::wire::Scalar;
use super::workers::Entry;
use crate::config::ModelId;

/// Most decimal places a fractional `weight` may have.
pub const MAX_WEIGHT_PLACES: u32 = 4;

/// Routing weights as whole numbers, exactly. Whole numbers stay as written; with any decimal
/// (at most [`MAX_WEIGHT_PLACES`] places) every weight is scaled by 10^(most places) and all
/// are divided by their gcd: 0.7 / 0.3 → 7 / 3, 0.25 / 0.75 → 1 / 3, 1.5 / 1 → 3 / 2. The
/// bool says some weight was a decimal.
pub(super) fn whole_weights(entries: &[Entry<'_>]) -> Result<(Vec<(ModelId, u32)>, bool), String> {
    let mut parsed: Vec<(ModelId, u64, u32)> = Vec::with_capacity(entries.len());
    for (id, r) in entries {
        let Some(w) = &r.weight else { continue };
        let (units, places) = decimal(w).map_err(|why| format!("model `{}`: weight {}{why}", r.from, show(w)))?;
        parsed.push((*id, units, places));
    }
    let most = parsed.iter().map(|(_, _, p)| *p).max().unwrap_or(0);
    let mut scaled = Vec::with_capacity(parsed.len());
    for (id, units, places) in &parsed {
        let factor = 10u64.checked_pow(most - places).unwrap_or(u64::MAX);
        scaled.push((*id, units.checked_mul(factor).ok_or_else(|| "weights are too large".to_string())?));
    }
    let g = if most > 0 { scaled.iter().fold(0, |g, (_, w)| crate::policy::gcd(g, *w)).max(1) } else { 1 };
    let mut out = Vec::with_capacity(scaled.len());
    let mut sum: u64 = 0;
    for (id, w) in scaled {
        let w = w / g;
        sum = sum.saturating_add(w);
        // Too large for the schedule either way: report the sum.
        let w =
            u32::try_from(w).map_err(|_| format!("weights add up to {sum} or more; the limit is {MAX_WEIGHT_SUM}"))?;
        out.push((id, w));
    }
    Ok((out, most > 0))
}

pub(super) fn show(w: &Scalar) -> String {
    match w {
        Scalar::Str(s) => format!("{s:?}"),
        other => other.describe(),
    }
}

/// A positive weight as `units / 10^places`; the error completes "weight X …".
pub(super) fn decimal(w: &Scalar) -> Result<(u64, u32), String> {
    const RULE: &str = "must be a number > 0 (whole, or with up to 4 decimal places such as 0.7)";
    match w {
        Scalar::Int(i) if *i > 0 => u32::try_from(*i).map(|v| (u64::from(v), 0)).map_err(|_| format!(" {RULE}")),
        Scalar::Float(f) if f.is_finite() && *f > 0.0 => {
            // Rust prints the shortest text that reads back as the same f64 (never an
            // exponent): 0.7 → "0.7", 4.0 → "4", 1e-5 → "0.00001".
            let text = f.to_string();
            let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
            let places = u32::try_from(frac.len()).unwrap_or(u32::MAX);
            if places > MAX_WEIGHT_PLACES {
                return Err(format!(" has more than {MAX_WEIGHT_PLACES} decimal places"));
            }
            let digits = format!("{int}{frac}");
            let units = digits.parse::<u64>().map_err(|_| format!(" {RULE}"))?;
            if units == 0 || int.len() > 10 {
                return Err(format!(" {RULE}"));
            }
            Ok((units, places))
        }
        _ => Err(format!(" {RULE}")),
    }
}
