//! Quantities written by people (command lines, sink options, fault and network specs).
//!
//! One rule for durations everywhere: a number with a unit (`500ms`, `1.5s`, `10m`, `1h`), and
//! a bare number is **seconds** (`90` is `90s`). Options whose name carries a unit
//! (`--jitter-ms`, `--stall-ms`, `delay-acks:MS`) take plain numbers in that unit instead.
//! Sizes: a bare number is bytes; `kB`, `MB`, `GB` (powers of 1000) and `KiB`, `MiB`, `GiB`.

use std::time::Duration;

/// A quantity that cannot be read, saying why and what would be right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QuantityError(String);

/// A number and the unit after it (`1.5s` -> 1.5, `s`); `what` names the quantity and shows
/// examples when there is no number.
fn number_and_unit<'a>(s: &'a str, what: &str) -> Result<(f64, &'a str), QuantityError> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value = number
        .parse()
        .map_err(|_| QuantityError(format!("`{s}` is not a {what}")))?;
    Ok((value, unit.trim()))
}

/// Parses a positive duration of at most a year; bare numbers are seconds.
pub fn parse_duration(s: &str) -> Result<Duration, QuantityError> {
    let d = parse_duration_or_zero(s)?;
    if d.is_zero() {
        return Err(QuantityError(format!(
            "`{}` must be a positive duration of at most a year",
            s.trim()
        )));
    }
    Ok(d)
}

/// Parses a duration of at most a year, zero included (a delay that may be none); bare
/// numbers are seconds.
pub fn parse_duration_or_zero(s: &str) -> Result<Duration, QuantityError> {
    let s = s.trim();
    let (value, unit) = number_and_unit(s, "duration (use 90s, 10m, 1h, 500ms)")?;
    let seconds = match unit {
        "" | "s" | "sec" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(QuantityError(format!(
                "`{s}`: unknown unit `{other}` (use ms, s, m, h)"
            )))
        }
    };
    if !seconds.is_finite() || !(0.0..=366.0 * 86400.0).contains(&seconds) {
        return Err(QuantityError(format!(
            "`{s}` must be a duration of at most a year"
        )));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses a size in bytes: a bare number is bytes; `kB`, `MB`, `GB` are powers of 1000,
/// `KiB`, `MiB`, `GiB` powers of 1024 (case-insensitive, `k`/`M`/`G` alone as well).
pub fn parse_bytes(s: &str) -> Result<u64, QuantityError> {
    let s = s.trim();
    let (value, unit) = number_and_unit(s, "size (use 500kB, 100MB, 2GiB)")?;
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(QuantityError(format!(
                "`{s}`: unknown unit `{other}` (use kB, MB, GB, KiB, MiB, GiB)"
            )))
        }
    };
    let bytes = value * scale;
    if !bytes.is_finite() || !(1.0..=1e15).contains(&bytes) {
        return Err(QuantityError(format!(
            "`{s}` must be between 1 byte and 1 PB"
        )));
    }
    Ok(bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_errors() {
        assert_eq!(parse_bytes("500000"), Ok(500_000));
        assert_eq!(parse_bytes("100MB"), Ok(100_000_000));
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("1.5k"), Ok(1500));
        for bad in ["", "MB", "0", "-1MB", "3 parsecs", "1e20GB"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn units_and_errors() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        for bad in ["", "s", "-3s", "10x", "0", "1e9h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration_or_zero("0ms"), Ok(Duration::ZERO));
        assert_eq!(parse_duration_or_zero("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration_or_zero("-1ms").is_err());
    }
}
