//! Durations on the command line: `90` (seconds), `90s`, `1.5s`, `500ms`, `10m`, `1h`.

use std::time::Duration;

/// Parses a duration; bare numbers are seconds.
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (use 90s, 10m, 1h, 500ms)"))?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("`{s}`: unknown unit `{other}` (use ms, s, m, h)")),
    };
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 366.0 * 86400.0 {
        return Err(format!(
            "`{s}` must be a positive duration of at most a year"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_errors() {
        assert_eq!(parse("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        for bad in ["", "s", "-3s", "10x", "0", "1e9h"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
