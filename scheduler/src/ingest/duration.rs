//! Go duration strings (`90s`, `2h`, `1h30m`, `1.5h`), as `time.ParseDuration` reads them:
//! the simulator's timing annotations use them because Kubernetes users already write them
//! (`kubectl --timeout`, `activeDeadlineSeconds` aside, every Go tool's flags).

/// Annotation on a pod (or a controller, copied to its pods): when the pod enters the
/// simulated cluster, as a Go duration after the simulation starts.
pub const ARRIVAL_ANNOTATION: &str = "tessera.io/arrival";
/// Annotation on a pod (or a controller, copied to its pods): how long the pod runs once
/// bound, as a Go duration; without it the pod runs until the simulation ends.
pub const DURATION_ANNOTATION: &str = "tessera.io/duration";

/// Seconds per unit. Units are matched whole, so `m` never shadows `ms`.
const UNITS: [(&str, f64); 8] = [
    ("ns", 1e-9),
    ("us", 1e-6),
    // Go accepts both the micro sign (U+00B5) and the Greek mu (U+03BC).
    ("\u{b5}s", 1e-6),
    ("\u{3bc}s", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
];

/// Parses a Go duration into seconds: a sequence of decimal numbers, each with an optional
/// fraction and a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), such as `300ms`, `1.5h` or
/// `2h45m`. A lone `0` needs no unit, as in Go. Empty strings, negative durations, missing or
/// unknown units are errors; the message says which.
pub fn go_duration(s: &str) -> Result<f64, String> {
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.starts_with('-') {
        return Err(format!("duration {s:?} is negative"));
    }
    if rest.is_empty() {
        return Err(format!("invalid duration {s:?}: empty"));
    }
    if rest == "0" {
        return Ok(0.0);
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let value = number_value(number).ok_or_else(|| format!("invalid duration {s:?}: bad number {number:?}"))?;
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!("invalid duration {s:?}: missing unit after {number:?}"));
        }
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| format!("invalid duration {s:?}: unknown unit {unit:?} (use ns, us, ms, s, m or h)"))?;
        total += value * scale;
        rest = after;
    }
    if total.is_finite() { Ok(total) } else { Err(format!("invalid duration {s:?}: too long")) }
}

/// `12`, `12.5`, `.5` or `12.`: digits on at least one side of an optional point, as Go
/// accepts.
fn number_value(number: &str) -> Option<f64> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    // Rust's float parser wants a digit before the point.
    format!("0{whole}.{fraction}0").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> f64 {
        go_duration(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn single_units() {
        assert_eq!(ok("90s"), 90.0);
        assert_eq!(ok("2h"), 7200.0);
        assert_eq!(ok("15m"), 900.0);
        assert_eq!(ok("250ms"), 0.25);
        assert!((ok("3us") - 3e-6).abs() < 1e-15);
        assert!((ok("3\u{b5}s") - 3e-6).abs() < 1e-15);
        assert!((ok("3\u{3bc}s") - 3e-6).abs() < 1e-15);
        assert!((ok("7ns") - 7e-9).abs() < 1e-18);
    }

    #[test]
    fn combined_units_and_fractions() {
        assert_eq!(ok("1h30m"), 5400.0);
        assert_eq!(ok("2h45m30s"), 9930.0);
        assert_eq!(ok("1.5h"), 5400.0);
        assert_eq!(ok(".5m"), 30.0);
        assert_eq!(ok("2.s"), 2.0);
        assert_eq!(ok("1m0.5s"), 60.5);
        assert!((ok("1s500ms") - 1.5).abs() < 1e-12);
        assert_eq!(ok("0"), 0.0);
        assert_eq!(ok("0s"), 0.0);
        assert_eq!(ok("+10s"), 10.0);
    }

    #[test]
    fn rejects_empty_negative_and_unknown_units() {
        for (input, needle) in [
            ("", "empty"),
            ("+", "empty"),
            ("-5s", "negative"),
            ("-0", "negative"),
            ("10", "missing unit"),
            ("1h30", "missing unit"),
            ("5d", "unknown unit \"d\""),
            ("5sec", "unknown unit \"sec\""),
            ("5 s", "unknown unit \" s\""),
            ("h", "bad number \"\""),
            (".s", "bad number \".\""),
            ("1.2.3s", "bad number \"1.2.3\""),
            ("1e3s", "unknown unit \"e\""),
        ] {
            let e = go_duration(input).expect_err(input);
            assert!(e.contains(needle), "{input:?}: {e}");
        }
    }
}
