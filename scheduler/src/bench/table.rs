//! `tessera bench` without `--json`: the report as a table a person reads, one line per
//! field of the JSON (nested fields as `latency_ms.p50`), named as in the JSON so the two read
//! alike, numbers rounded to what they can mean.

use std::fmt::Write;

use serde_json::Value;

/// The report `value` (the JSON `--json` prints) as aligned `name  value` lines.
pub fn table(value: &Value) -> String {
    let mut rows = Vec::new();
    flatten("", value, &mut rows);
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<width$}  {v}");
    }
    out
}

fn flatten(prefix: &str, value: &Value, rows: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, rows);
            }
        }
        other => rows.push((prefix.to_string(), cell(other))),
    }
}

/// A value as a cell: integers as they are, other numbers to 3 significant decimals at most.
fn cell(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or_default();
            let s = if x.abs() >= 100.0 { format!("{x:.0}") } else { format!("{x:.3}") };
            if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_fields_are_dotted_and_numbers_rounded() {
        let v = serde_json::json!({"pods": 50000, "wall_s": 0.716646691, "pods_per_sec": 69769.38654,
                                   "latency_ms": {"p50": 434.3, "p99": 786.6}, "mix": "basic"});
        let t = table(&v);
        let rows: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
        for want in [
            ["pods", "50000"],
            ["wall_s", "0.717"],
            ["pods_per_sec", "69769"],
            ["latency_ms.p50", "434"],
            ["latency_ms.p99", "787"],
            ["mix", "basic"],
        ] {
            assert!(rows.contains(&want.to_vec()), "{want:?} in\n{t}");
        }
        let starts: Vec<usize> = t.lines().map(|l| l.rfind("  ").unwrap_or(0)).collect();
        assert!(starts.windows(2).all(|w| w[0] == w[1]), "values aligned:\n{t}");
    }
}
