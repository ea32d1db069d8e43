//! Lexing: whitespace, literals, numbers and strings (8 bytes at a time), and decoding a
//! string literal's contents.

use super::walk::invalid;
use super::BodyError;

#[inline]
pub(super) fn skip_ws(b: &[u8], mut pos: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = b.get(pos) {
        pos += 1;
    }
    pos
}

pub(super) fn literal(b: &[u8], pos: usize, word: &'static [u8]) -> Result<usize, BodyError> {
    if b.get(pos..pos + word.len()) == Some(word) {
        Ok(pos + word.len())
    } else {
        Err(invalid(pos, "invalid literal"))
    }
}

#[inline]
fn skip_digits(b: &[u8], mut pos: usize) -> usize {
    while let Some(b'0'..=b'9') = b.get(pos) {
        pos += 1;
    }
    pos
}

/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`; what may follow is the caller's
/// business (so `01` fails at the `1`, as "expected ',' ...").
pub(super) fn number(b: &[u8], mut pos: usize) -> Result<usize, BodyError> {
    if b.get(pos) == Some(&b'-') {
        pos += 1;
    }
    match b.get(pos) {
        Some(b'0') => pos += 1,
        Some(b'1'..=b'9') => pos = skip_digits(b, pos + 1),
        _ => return Err(invalid(pos, "invalid number")),
    }
    if b.get(pos) == Some(&b'.') {
        let end = skip_digits(b, pos + 1);
        if end == pos + 1 {
            return Err(invalid(end, "expected a digit after the decimal point"));
        }
        pos = end;
    }
    if let Some(b'e' | b'E') = b.get(pos) {
        pos += 1;
        if let Some(b'+' | b'-') = b.get(pos) {
            pos += 1;
        }
        let end = skip_digits(b, pos);
        if end == pos {
            return Err(invalid(end, "expected a digit in the exponent"));
        }
        pos = end;
    }
    Ok(pos)
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte lane of `x` that is `"`, `\` or < 0x20. Lanes above the lowest
/// hit may be false positives (borrow), so only the lowest set bit is exact.
#[inline]
fn special_lanes(x: u64) -> u64 {
    let quote = x ^ (LO * u64::from(b'"'));
    let backslash = x ^ (LO * u64::from(b'\\'));
    let zero = |v: u64| v.wrapping_sub(LO) & !v;
    (zero(quote) | zero(backslash) | (x.wrapping_sub(LO * 0x20) & !x)) & HI
}

/// Index of the first byte at or after `pos` that is `"`, `\` or a control character, or
/// `b.len()`. Eight bytes at a time (SWAR) over the long plain runs of chat messages. ORs the
/// bytes it reads into `hi` (possibly a few past the returned index: harmless, it only makes a
/// UTF-8 check happen that was not needed), so the caller knows whether any was non-ASCII.
#[inline]
fn find_special(b: &[u8], pos: usize, hi: &mut u64) -> usize {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let pos = {
        let (pos, found) = simd::find_special(b, pos, hi);
        if found {
            return pos;
        }
        pos
    };
    find_special_swar(b, pos, hi)
}

#[inline]
fn find_special_swar(b: &[u8], mut pos: usize, hi: &mut u64) -> usize {
    while let Some(chunk) = b.get(pos..).and_then(|s| s.first_chunk::<8>()) {
        let x = u64::from_le_bytes(*chunk);
        let hits = special_lanes(x);
        *hi |= x;
        if hits != 0 {
            return pos + (hits.trailing_zeros() / 8) as usize;
        }
        pos += 8;
    }
    while let Some(&c) = b.get(pos) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        *hi |= u64::from(c);
        pos += 1;
    }
    pos
}

/// Sixteen bytes at a time with wasm SIMD (the .wasm is built with `+simd128`; Envoy's V8 has
/// it): about twice the SWAR loop's speed over a 1 MB body's long plain strings in V8.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::{u8x16_bitmask, u8x16_eq, u8x16_lt, u8x16_splat, v128, v128_any_true, v128_load, v128_or};

    use super::HI;

    /// Like [`super::find_special`] over whole 16-byte blocks: the index of the first special
    /// byte and `true`, or where the blocks end and `false` (the caller finishes the tail).
    #[inline]
    pub(super) fn find_special(b: &[u8], mut pos: usize, hi: &mut u64) -> (usize, bool) {
        let quote = u8x16_splat(b'"');
        let backslash = u8x16_splat(b'\\');
        let space = u8x16_splat(0x20);
        let special = |x: v128| v128_or(v128_or(u8x16_eq(x, quote), u8x16_eq(x, backslash)), u8x16_lt(x, space));
        // SAFETY (both loads): `block` is 16 readable bytes; wasm loads need no alignment.
        let load = |block: &[u8; 16]| unsafe { v128_load(block.as_ptr().cast::<v128>()) };
        let mut seen = u8x16_splat(0);
        let mut found = false;
        // 64 bytes per test over the long plain runs, then 16 at a time to the exact block.
        while let Some(run) = b.get(pos..).and_then(|s| s.first_chunk::<64>()) {
            let (x0, x1, x2, x3) = (load(sub(run, 0)), load(sub(run, 16)), load(sub(run, 32)), load(sub(run, 48)));
            let hits = v128_or(v128_or(special(x0), special(x1)), v128_or(special(x2), special(x3)));
            if v128_any_true(hits) {
                break;
            }
            seen = v128_or(seen, v128_or(v128_or(x0, x1), v128_or(x2, x3)));
            pos += 64;
        }
        while let Some(block) = b.get(pos..).and_then(|s| s.first_chunk::<16>()) {
            let x = load(block);
            let hits = special(x);
            seen = v128_or(seen, x);
            if v128_any_true(hits) {
                pos += u8x16_bitmask(hits).trailing_zeros() as usize;
                found = true;
                break;
            }
            pos += 16;
        }
        // Any byte with its high bit set: not ASCII (the caller checks UTF-8 then).
        if u8x16_bitmask(seen) != 0 {
            *hi |= HI;
        }
        (pos, found)
    }

    /// The 16 bytes at `at` of a 64-byte run (`at` ≤ 48).
    #[inline]
    fn sub(run: &[u8; 64], at: usize) -> &[u8; 16] {
        run.get(at..).and_then(|s| s.first_chunk::<16>()).unwrap_or(&[0; 16])
    }
}

/// Validate the string literal whose opening quote is at `pos`. Returns the index just past
/// the closing quote and whether the literal contains any escape. The contents must be UTF-8;
/// they are checked only when the fast loop saw a non-ASCII byte.
pub(super) fn skip_string(b: &[u8], pos: usize) -> Result<(usize, bool), BodyError> {
    let mut i = pos + 1;
    let mut escaped = false;
    let mut hi = 0u64;
    loop {
        i = find_special(b, i, &mut hi);
        match b.get(i) {
            Some(b'"') => {
                if hi & HI != 0 {
                    if let Err(e) = std::str::from_utf8(b.get(pos + 1..i).unwrap_or_default()) {
                        return Err(invalid(pos + 1 + e.valid_up_to(), "invalid UTF-8"));
                    }
                }
                return Ok((i + 1, escaped));
            }
            Some(b'\\') => {
                escaped = true;
                i = skip_escape(b, i)?;
            }
            Some(_) => return Err(invalid(i, "control character in string")),
            None => return Err(invalid(i, "unterminated string")),
        }
    }
}

/// Validate the escape whose backslash is at `i`; return the index after it.
fn skip_escape(b: &[u8], i: usize) -> Result<usize, BodyError> {
    match b.get(i + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 2),
        Some(b'u') => {
            let cp = hex4(b, i + 2).ok_or_else(|| invalid(i, "invalid \\u escape"))?;
            match cp {
                0xD800..=0xDBFF => {
                    if b.get(i + 6..i + 8) != Some(b"\\u") {
                        return Err(invalid(i, "lone surrogate in \\u escape"));
                    }
                    let low = hex4(b, i + 8).ok_or_else(|| invalid(i + 6, "invalid \\u escape"))?;
                    if (0xDC00..=0xDFFF).contains(&low) {
                        Ok(i + 12)
                    } else {
                        Err(invalid(i, "lone surrogate in \\u escape"))
                    }
                }
                0xDC00..=0xDFFF => Err(invalid(i, "lone surrogate in \\u escape")),
                _ => Ok(i + 6),
            }
        }
        Some(_) => Err(invalid(i, "invalid escape")),
        None => Err(invalid(i + 1, "unterminated string")),
    }
}

/// Four hex digits at `i` as a code unit.
fn hex4(b: &[u8], i: usize) -> Option<u32> {
    b.get(i..i + 4)?.iter().try_fold(0u32, |acc, &c| Some(acc * 16 + char::from(c).to_digit(16)?))
}

/// Decode the contents of a string literal (between the quotes). `None` if it is not a valid
/// JSON string body (only reachable for input `skip_string` did not validate).
pub(super) fn decode_string(raw: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(rel) = raw.get(i..)?.iter().position(|&c| c == b'\\') {
        out.extend_from_slice(raw.get(i..i + rel)?);
        i += rel;
        let simple = match *raw.get(i + 1)? {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let hi = hex4(raw, i + 2)?;
                let (cp, len) = if (0xD800..=0xDBFF).contains(&hi) {
                    if raw.get(i + 6..i + 8)? != b"\\u" {
                        return None;
                    }
                    let lo = hex4(raw, i + 8)?;
                    if !(0xDC00..=0xDFFF).contains(&lo) {
                        return None;
                    }
                    (0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00), 12)
                } else {
                    (hi, 6)
                };
                let ch = char::from_u32(cp)?;
                out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                i += len;
                continue;
            }
            _ => return None,
        };
        out.push(simple);
        i += 2;
    }
    out.extend_from_slice(raw.get(i..)?);
    String::from_utf8(out).ok()
}
