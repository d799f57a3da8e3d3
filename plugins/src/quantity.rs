//! Kubernetes resource quantities (`100m`, `1.5Gi`, `2e3`, `1k`), parsed exactly as
//! `k8s.io/apimachinery/pkg/api/resource` does, into the integers Tessera schedules with.
//!
//! A quantity is `<sign><digits>[.<digits>]<suffix>` where the suffix is a binary SI unit
//! (`Ki`…`Ei`), a decimal SI unit (`n u m "" k M G T P E`) or a decimal exponent (`e3`, `E-2`).
//! Conversions round up, as upstream's `Value()` and `MilliValue()` do, so a request is never
//! understated.

use thiserror::Error;

/// Why a quantity string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuantityError {
    /// The string is empty.
    #[error("quantity is empty")]
    Empty,
    /// The string does not follow the quantity grammar.
    #[error("quantity {0:?} is not a valid Kubernetes quantity (expected e.g. 100m, 1.5Gi, 2e3)")]
    Syntax(String),
    /// The suffix is not one Kubernetes knows.
    #[error("quantity {0:?} has an unknown suffix {1:?}")]
    Suffix(String, String),
    /// The value does not fit in a signed 64-bit integer at the requested scale.
    #[error("quantity {0:?} is too large")]
    Overflow(String),
}

/// A parsed quantity: `mantissa × 10^exp10 × 2^exp2`, held exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    mantissa: i128,
    exp10: i32,
    exp2: u32,
}

impl Quantity {
    /// Parses a quantity string.
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        let t = s.trim();
        if t.is_empty() {
            return Err(QuantityError::Empty);
        }
        let (negative, rest) = match t.as_bytes()[0] {
            b'-' => (true, &t[1..]),
            b'+' => (false, &t[1..]),
            _ => (false, t),
        };
        let number_len = rest.bytes().position(|b| !(b.is_ascii_digit() || b == b'.')).unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_len);
        let (mut mantissa, mut exp10) = parse_decimal(number).ok_or_else(|| syntax(s))?;
        let (suffix_exp10, exp2) = parse_suffix(s, suffix)?;
        exp10 = exp10.checked_add(suffix_exp10).ok_or_else(|| overflow(s))?;
        if negative {
            mantissa = -mantissa;
        }
        Ok(Quantity { mantissa, exp10, exp2 })
    }

    /// The value in whole units, rounded up (upstream `Value()`): bytes for memory, counts.
    pub fn value(&self) -> Option<i64> {
        self.scaled(0)
    }

    /// The value in thousandths, rounded up (upstream `MilliValue()`): millicores for CPU.
    pub fn milli_value(&self) -> Option<i64> {
        self.scaled(3)
    }

    /// `value × 10^scale`, rounded towards +∞, if it fits in an `i64`.
    pub fn scaled(&self, scale: i32) -> Option<i64> {
        let mut v = self.mantissa;
        for _ in 0..self.exp2 {
            v = v.checked_mul(2)?;
        }
        let e = self.exp10.checked_add(scale)?;
        if e >= 0 {
            for _ in 0..e {
                v = v.checked_mul(10)?;
            }
        } else {
            let divisor = 10i128.checked_pow(e.unsigned_abs())?;
            v = ceil_div(v, divisor);
        }
        i64::try_from(v).ok()
    }
}

/// Parses `s` and returns whole units (bytes, counts), rounded up.
pub fn parse_value(s: &str) -> Result<i64, QuantityError> {
    Quantity::parse(s)?.value().ok_or_else(|| overflow(s))
}

/// Parses `s` and returns thousandths (millicores), rounded up.
pub fn parse_milli(s: &str) -> Result<i64, QuantityError> {
    Quantity::parse(s)?.milli_value().ok_or_else(|| overflow(s))
}

fn syntax(s: &str) -> QuantityError {
    QuantityError::Syntax(s.to_string())
}

fn overflow(s: &str) -> QuantityError {
    QuantityError::Overflow(s.to_string())
}

fn ceil_div(v: i128, d: i128) -> i128 {
    let q = v / d;
    if v % d > 0 { q + 1 } else { q }
}

/// `digits[.digits]` → (integer of all digits, power of ten to apply). At least one digit.
fn parse_decimal(number: &str) -> Option<(i128, i32)> {
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
        return None;
    }
    let mut mantissa: i128 = 0;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    let exp10 = -i32::try_from(frac_part.len()).ok()?;
    Some((mantissa, exp10))
}

/// The suffix as (power of ten, power of 1024).
fn parse_suffix(s: &str, suffix: &str) -> Result<(i32, u32), QuantityError> {
    let unit = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        _ => return parse_exponent(s, suffix),
    };
    Ok(unit)
}

fn parse_exponent(s: &str, suffix: &str) -> Result<(i32, u32), QuantityError> {
    let unknown = || QuantityError::Suffix(s.to_string(), suffix.to_string());
    let digits = suffix.strip_prefix(['e', 'E']).ok_or_else(unknown)?;
    let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
    if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unknown());
    }
    let exp: i32 = digits.parse().map_err(|_| overflow(s))?;
    Ok((exp, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_forms_become_millicores() {
        assert_eq!(parse_milli("100m"), Ok(100));
        assert_eq!(parse_milli("1"), Ok(1000));
        assert_eq!(parse_milli("1.5"), Ok(1500));
        assert_eq!(parse_milli("0.1"), Ok(100));
        assert_eq!(parse_milli(".5"), Ok(500));
        assert_eq!(parse_milli("2."), Ok(2000));
        assert_eq!(parse_milli("+2"), Ok(2000));
        // Upstream rounds sub-milli values up: 1 nanocore still takes a millicore.
        assert_eq!(parse_milli("1n"), Ok(1));
        assert_eq!(parse_milli("100u"), Ok(1));
    }

    #[test]
    fn memory_forms_become_bytes() {
        assert_eq!(parse_value("1Ki"), Ok(1024));
        assert_eq!(parse_value("1.5Gi"), Ok(1_610_612_736));
        assert_eq!(parse_value("128974848"), Ok(128_974_848));
        assert_eq!(parse_value("129e6"), Ok(129_000_000));
        assert_eq!(parse_value("129M"), Ok(129_000_000));
        assert_eq!(parse_value("123Mi"), Ok(128_974_848));
        assert_eq!(parse_value("1k"), Ok(1000));
        assert_eq!(parse_value("2e3"), Ok(2000));
        assert_eq!(parse_value("2E3"), Ok(2000));
        assert_eq!(parse_value("5e-1"), Ok(1));
        assert_eq!(parse_value("1Ei"), Ok(1 << 60));
    }

    #[test]
    fn negative_values_round_towards_positive_infinity() {
        assert_eq!(parse_value("-1.5"), Ok(-1));
        assert_eq!(parse_milli("-100m"), Ok(-100));
    }

    #[test]
    fn malformed_quantities_are_rejected_with_a_reason() {
        assert_eq!(parse_value(""), Err(QuantityError::Empty));
        assert!(matches!(parse_value("abc"), Err(QuantityError::Syntax(_))));
        assert!(matches!(parse_value("."), Err(QuantityError::Syntax(_))));
        assert!(matches!(parse_value("1.2.3"), Err(QuantityError::Syntax(_))));
        assert!(matches!(parse_value("Gi"), Err(QuantityError::Syntax(_))));
        assert!(matches!(parse_value("1Xi"), Err(QuantityError::Suffix(..))));
        assert!(matches!(parse_value("1e"), Err(QuantityError::Suffix(..))));
        assert!(matches!(parse_value("1 Gi"), Err(QuantityError::Suffix(..))));
        assert!(matches!(parse_value("9Ei"), Err(QuantityError::Overflow(_))));
        assert!(matches!(parse_milli("1e30"), Err(QuantityError::Overflow(_))));
    }

    proptest::proptest! {
        #[test]
        fn integers_round_trip(n in 0i64..1_000_000_000_000) {
            proptest::prop_assert_eq!(parse_value(&n.to_string()), Ok(n));
            proptest::prop_assert_eq!(parse_milli(&format!("{n}m")), Ok(n));
        }

        #[test]
        fn no_input_panics(s in "\\PC{0,20}") {
            let _ = Quantity::parse(&s).map(|q| q.milli_value());
        }
    }
}
