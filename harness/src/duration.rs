//! Durations as people write them on the command line and in schedules: `500ms`, `3s`, `1.5s`,
//! `2m`, `1h`; a bare number means seconds. Printed back in the same form.

use std::time::Duration;

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("bad duration {text:?} (examples: 500ms, 3s, 1.5s, 2m)");
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(bad());
    }
    let number: f64 = number.parse().map_err(|_| bad())?;
    let scale_ms = match unit {
        "ms" => 1.0,
        "" | "s" => 1_000.0,
        "m" | "min" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return Err(bad()),
    };
    let ms = number * scale_ms;
    if !ms.is_finite() || ms > 1e12 {
        return Err(bad());
    }
    Ok(Duration::from_micros((ms * 1000.0).round() as u64))
}

/// The shortest exact form: `3s` for whole seconds, `1500ms` otherwise.
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms > 0 && (ms / 1000) * 1000 == ms {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// For clap: a duration argument.
pub fn duration_arg(text: &str) -> Result<Duration, String> {
    if text.trim_start().starts_with('-') {
        return Err(format!(
            "bad duration {text:?}: a duration cannot be negative (examples: 500ms, 3s, 1.5s, 2m)"
        ));
    }
    parse_duration(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        for bad in ["", "s", "-1s", "3x", "abc", "1.2.3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for ms in [0, 1, 999, 1000, 1500, 60_000] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
