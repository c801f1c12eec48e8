//! The values of the module's numeric directives, read once here for the C
//! side's directive handlers: a bad value stops start-up with the
//! directive's file and line, and this sentence.

/// `WasmTimeout <seconds>`: decimals allowed (`0.5`), from 1 ms to a day;
/// the milliseconds, rounded.
pub fn timeout_ms(text: &str) -> Result<u64, String> {
    let refused = || format!("'{text}' is not a number of seconds from 0.001 to 86400");
    // Digits and one point only: no sign, exponent, "inf" or "nan".
    let plain = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && text.bytes().filter(|&b| b == b'.').count() <= 1
        && text.bytes().any(|b| b.is_ascii_digit());
    let seconds: f64 = text.parse().ok().filter(|_| plain).ok_or_else(refused)?;
    if !(0.001..=86400.0).contains(&seconds) {
        return Err(refused());
    }
    Ok((seconds * 1000.0).round() as u64)
}

/// `WasmMemoryLimit <size>`: from 64 KiB to 4 GiB.
pub fn memory_limit(text: &str) -> Result<u64, String> {
    size(text, 64 << 10, 4 << 30)
}

/// A size in bytes, or with a K, M or G suffix (powers of 1024, either
/// case), from `min` to `max`.
pub fn size(text: &str, min: u64, max: u64) -> Result<u64, String> {
    let refused = || {
        format!(
            "'{text}' is not a size from {} to {} (a number of bytes, or with a K, M or G \
             suffix)",
            shown(min),
            shown(max)
        )
    };
    let (digits, unit) = match text.as_bytes().last().map(u8::to_ascii_uppercase) {
        Some(b'K') => (&text[..text.len() - 1], 1 << 10),
        Some(b'M') => (&text[..text.len() - 1], 1 << 20),
        Some(b'G') => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refused());
    }
    let bytes = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|bytes| (min..=max).contains(bytes))
        .ok_or_else(refused)?;
    Ok(bytes)
}

/// `bytes` as the largest suffix that divides it: 64K, 4G, 1.
fn shown(bytes: u64) -> String {
    [(30, "G"), (20, "M"), (10, "K")]
        .into_iter()
        .find(|(shift, _)| bytes >= 1 << shift && bytes.is_multiple_of(1 << shift))
        .map_or_else(
            || bytes.to_string(),
            |(shift, unit)| format!("{}{unit}", bytes >> shift),
        )
}

/// The largest count a directive takes (`WasmMaxInstances`,
/// `WasmInstanceReuse`).
const MAX_COUNT: u32 = 1_000_000;

/// A count from 1 to a million (`WasmMaxInstances <n>`); with `off`,
/// `Off` (any case) is 1 as well (`WasmInstanceReuse Off|<n>`).
pub fn count(text: &str, off: bool) -> Result<u32, String> {
    if off && text.eq_ignore_ascii_case("off") {
        return Ok(1);
    }
    let number = text
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_COUNT).contains(n) && text.bytes().all(|b| b.is_ascii_digit()));
    number.ok_or_else(|| {
        if off {
            format!("'{text}' is neither Off nor a number of requests from 1 to {MAX_COUNT}")
        } else {
            format!("'{text}' is not a number from 1 to {MAX_COUNT}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_plain_decimal_seconds() {
        assert_eq!(timeout_ms("2"), Ok(2000));
        assert_eq!(timeout_ms("0.5"), Ok(500));
        assert_eq!(timeout_ms("0.0015"), Ok(2));
        assert_eq!(timeout_ms("86400"), Ok(86_400_000));
        for bad in [
            "", ".", "0", "0.0009", "86401", "-1", "+1", "1e3", "inf", "nan", "1.2.3", " 1",
        ] {
            assert!(timeout_ms(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn memory_limits_take_binary_suffixes() {
        assert_eq!(memory_limit("64K"), Ok(64 << 10));
        assert_eq!(memory_limit("128m"), Ok(128 << 20));
        assert_eq!(memory_limit("4G"), Ok(4 << 30));
        assert_eq!(memory_limit("65536"), Ok(65536));
        for bad in [
            "",
            "K",
            "63K",
            "5G",
            "4097M",
            "1T",
            "-1M",
            "1.5M",
            "18446744073709551616",
        ] {
            assert!(memory_limit(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn counts_are_one_to_a_million() {
        assert_eq!(count("1", false), Ok(1));
        assert_eq!(count("1000000", false), Ok(1_000_000));
        assert_eq!(count("OFF", true), Ok(1));
        for bad in ["0", "1000001", "-1", "+1", "", "off", "1k"] {
            assert!(count(bad, false).is_err(), "{bad:?}");
        }
        assert!(count("x", true).unwrap_err().contains("neither Off"));
    }
}
