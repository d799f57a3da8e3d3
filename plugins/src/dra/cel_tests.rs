use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use super::*;
use crate::dra::model::{AttrValue, Capacity, Device};
use crate::intern::Sym;

/// A uid no other test's device has.
fn next_uid() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1 << 40);
    NEXT.fetch_add(1, AtomicOrdering::Relaxed)
}

fn device(
    name: &str,
    driver: &str,
    attributes: &[(&str, AttrValue)],
    capacity: &[(&str, &str)],
    allow_multiple: bool,
) -> Device {
    Device {
        uid: next_uid(),
        name: Sym::new(name),
        driver: Sym::new(driver),
        pool: Sym::new("pool-a"),
        attributes: attributes.iter().map(|(k, v)| (Arc::from(*k), v.clone())).collect::<BTreeMap<_, _>>(),
        capacity: capacity
            .iter()
            .map(|(k, v)| {
                let milli = crate::quantity::parse_milli(v).unwrap_or(i64::MIN);
                (Arc::from(*k), Capacity { text: Arc::from(*v), milli, policy: None })
            })
            .collect(),
        taints: Vec::new(),
        allow_multiple_allocations: allow_multiple,
        consumes_counters: Vec::new(),
    }
}

fn s(v: &str) -> AttrValue {
    AttrValue::String(Arc::from(v))
}

fn version(v: &str) -> AttrValue {
    AttrValue::Version(Arc::from(v))
}

/// An A100 with 80Gi, a newer driver version, and one attribute in another domain.
fn a100() -> Device {
    device(
        "gpu-0",
        "gpu.nvidia.com",
        &[
            ("gpu.nvidia.com/model", s("A100")),
            ("gpu.nvidia.com/index", AttrValue::Int(0)),
            ("gpu.nvidia.com/mig", AttrValue::Bool(true)),
            ("gpu.nvidia.com/driverVersion", version("550.54.15")),
            ("gpu.nvidia.com/cudaVersion", version("12.4.0-rc.1+build.7")),
            ("pci.example.com/numaNode", AttrValue::Int(1)),
            // No domain: the driver's.
            ("uuid", s("GPU-1234")),
        ],
        &[("gpu.nvidia.com/memory", "80Gi"), ("gpu.nvidia.com/cores", "6912"), ("gpu.nvidia.com/power", "250500m")],
        false,
    )
}

/// A T4 with 16Gi and an older driver, shareable.
fn t4() -> Device {
    device(
        "gpu-1",
        "gpu.nvidia.com",
        &[
            ("gpu.nvidia.com/model", s("T4")),
            ("gpu.nvidia.com/index", AttrValue::Int(1)),
            ("gpu.nvidia.com/mig", AttrValue::Bool(false)),
            ("gpu.nvidia.com/driverVersion", version("535.0.0")),
            ("gpu.nvidia.com/cudaVersion", version("12.4.0")),
        ],
        &[("gpu.nvidia.com/memory", "16Gi"), ("gpu.nvidia.com/cores", "2560"), ("gpu.nvidia.com/power", "70")],
        true,
    )
}

/// A NIC of another driver, with no attributes in the GPU domain.
fn nic() -> Device {
    device("nic-0", "net.example.com", &[("net.example.com/speed", AttrValue::Int(100))], &[], false)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Yes,
    No,
    /// A runtime error whose message contains this.
    Fails(&'static str),
}
use Want::{Fails, No, Yes};

#[test]
fn selectors_match_devices_as_upstream() -> Result<(), CelError> {
    let devices = [a100(), t4(), nic()];
    // (expression, [a100, t4, nic])
    let table: &[(&str, [Want; 3])] = &[
        // driver
        (r#"device.driver == "gpu.nvidia.com""#, [Yes, Yes, No]),
        (r#"device.driver.startsWith("net.")"#, [No, No, Yes]),
        // string, int, bool attributes; select and bracket access
        (r#"device.attributes["gpu.nvidia.com"].model == "A100""#, [Yes, No, Fails("no such key: model")]),
        (r#"device.attributes["gpu.nvidia.com"]["model"] == "T4""#, [No, Yes, Fails("no such key: model")]),
        (r#"device.attributes["gpu.nvidia.com"].index >= 1"#, [No, Yes, Fails("no such key: index")]),
        (r#"device.attributes["gpu.nvidia.com"].mig"#, [Yes, No, Fails("no such key: mig")]),
        (r#"!device.attributes["gpu.nvidia.com"].mig"#, [No, Yes, Fails("no such key: mig")]),
        (r#"device.attributes["pci.example.com"].numaNode == 1"#, [Yes, Fails("numaNode"), Fails("numaNode")]),
        // a name without a domain is in the driver's
        (r#"device.attributes["gpu.nvidia.com"].uuid == "GPU-1234""#, [Yes, Fails("uuid"), Fails("uuid")]),
        // the driver guards lookups of another driver's attributes
        (r#"device.driver == "gpu.nvidia.com" && device.attributes["gpu.nvidia.com"].model == "T4""#, [No, Yes, No]),
        (r#"device.driver != "gpu.nvidia.com" || device.attributes["gpu.nvidia.com"].index == 0"#, [Yes, No, Yes]),
        // presence tests and membership never fail
        (r#"has(device.attributes["gpu.nvidia.com"].model)"#, [Yes, Yes, No]),
        (r#""mig" in device.attributes["gpu.nvidia.com"]"#, [Yes, Yes, No]),
        (r#""pci.example.com" in device.attributes"#, [Yes, No, No]),
        (r#"device.attributes["nothing.example.com"].size() == 0"#, [Yes, Yes, Yes]),
        (r#"size(device.attributes) == 2"#, [Yes, No, No]),
        (r#"device.attributes["gpu.nvidia.com"].exists(name, name == "mig")"#, [Yes, Yes, No]),
        (r#"device.attributes.all(domain, domain.endsWith(".com"))"#, [Yes, Yes, Yes]),
        // capacity: quantities compare by value
        (
            r#"device.capacity["gpu.nvidia.com"].memory.compareTo(quantity("40Gi")) >= 0"#,
            [Yes, No, Fails("no such key: memory")],
        ),
        (r#"device.capacity["gpu.nvidia.com"]["memory"].isGreaterThan(quantity("16Gi"))"#, [Yes, No, Fails("memory")]),
        (r#"device.capacity["gpu.nvidia.com"].memory.isLessThan(quantity("80Gi"))"#, [No, Yes, Fails("memory")]),
        (r#"device.capacity["gpu.nvidia.com"].memory == quantity("16384Mi")"#, [No, Yes, Fails("memory")]),
        (r#"device.capacity["gpu.nvidia.com"].cores.asInteger() > 4000"#, [Yes, No, Fails("cores")]),
        (r#"device.capacity["gpu.nvidia.com"].power.isInteger()"#, [No, Yes, Fails("power")]),
        (r#"device.capacity["gpu.nvidia.com"].power.asApproximateFloat() > 250.0"#, [Yes, No, Fails("power")]),
        (r#"device.capacity["gpu.nvidia.com"].memory.sub(quantity("16Gi")).sign() == 1"#, [Yes, No, Fails("memory")]),
        (
            r#"device.capacity["gpu.nvidia.com"].power.add(quantity("500m")) == quantity("251")"#,
            [Yes, No, Fails("power")],
        ),
        // versions
        (
            r#"device.attributes["gpu.nvidia.com"].driverVersion.isGreaterThan(semver("540.0.0"))"#,
            [Yes, No, Fails("driverVersion")],
        ),
        (r#"device.attributes["gpu.nvidia.com"].driverVersion.major() == 535"#, [No, Yes, Fails("driverVersion")]),
        (
            r#"device.attributes["gpu.nvidia.com"].cudaVersion.compareTo(semver("12.4.0")) < 0"#,
            [Yes, No, Fails("cudaVersion")],
        ),
        (r#"device.attributes["gpu.nvidia.com"].cudaVersion == semver("12.4.0")"#, [No, Yes, Fails("cudaVersion")]),
        // allowMultipleAllocations, cel.bind, strings extension
        (r#"device.allowMultipleAllocations"#, [No, Yes, No]),
        (r#"cel.bind(gpu, device.attributes["gpu.nvidia.com"], gpu.mig && gpu.index == 0)"#, [Yes, No, Fails("mig")]),
        (r#"device.attributes["gpu.nvidia.com"].model.lowerAscii() == "a100""#, [Yes, No, Fails("model")]),
        (r#"device.attributes["gpu.nvidia.com"].model.matches("^A[0-9]+$")"#, [Yes, No, Fails("model")]),
        // a non-bool result that only evaluation reveals
        (
            r#"device.attributes["gpu.nvidia.com"].index"#,
            [Fails("must evaluate to bool, not int"), Fails("not int"), Fails("index")],
        ),
    ];
    let mut failures = Vec::new();
    for (expression, wants) in table {
        let selector = Selector::compile(expression)?;
        for (device, want) in devices.iter().zip(wants) {
            let got = selector.matches(device);
            let ok = match (want, &got) {
                (Yes, Ok(true)) | (No, Ok(false)) => true,
                (Fails(part), Err(CelError(message))) => message.contains(part),
                _ => false,
            };
            if !ok {
                failures.push(format!("{expression} on {}: want {want:?}, got {got:?}", device.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

#[test]
fn a_runtime_error_names_the_expression_the_device_and_the_problem() -> Result<(), CelError> {
    let selector = Selector::compile(r#"device.attributes["gpu.nvidia.com"].missing == 1"#)?;
    let Err(CelError(message)) = selector.matches(&a100()) else {
        panic!("a missing attribute is an error");
    };
    assert!(message.contains(r#"device.attributes[\"gpu.nvidia.com\"].missing"#), "{message}");
    assert!(message.contains("gpu.nvidia.com/pool-a/gpu-0"), "{message}");
    assert!(message.contains("no such key: missing"), "{message}");
    Ok(())
}

fn compile_error(expression: &str) -> String {
    match Selector::compile(expression) {
        Ok(_) => panic!("{expression:?} compiled"),
        Err(CelError(message)) => message,
    }
}

#[test]
fn compile_rejects_what_upstream_rejects() {
    let cases: &[(&str, &[&str])] = &[
        // syntax
        ("device.driver ==", &["compilation failed", "Syntax error"]),
        ("device.driver == 'a' &&& true", &["compilation failed"]),
        // not a bool, known at compile time
        ("device.driver", &["must evaluate to bool, not string"]),
        ("1 + 2", &["must evaluate to bool, not int"]),
        (r#"device.capacity["d"].memory"#, &["must evaluate to bool, not kubernetes.Quantity"]),
        (r#"quantity("1")"#, &["not kubernetes.Quantity"]),
        // undeclared things
        ("gpu.model == 'x'", &["undeclared reference to 'gpu'", "<input>:1:1"]),
        ("device.drivr == 'x'", &["undefined field 'drivr'"]),
        ("device.driver.frobnicate()", &["undeclared reference to 'frobnicate'"]),
        ("nosuch(device.driver)", &["undeclared reference to 'nosuch'"]),
        // operators a quantity or version never accepts
        (r#"device.capacity["d"].memory > 5"#, &["no matching overload for '_>_'", "kubernetes.Quantity, int"]),
        (r#"semver("1.0.0") == "1.0.0""#, &["no matching overload for '_==_'"]),
        (r#"device.driver.compareTo(quantity("1"))"#, &["no matching overload for 'compareTo'"]),
        (r#"quantity("1").compareTo(semver("1.0.0")) == 0"#, &["no matching overload for 'compareTo'"]),
        ("'a' < 1", &["no matching overload for '_<_'"]),
        ("!device.driver", &["no matching overload for '!_'"]),
        // a literal pattern that is no regular expression
        ("device.driver.matches('(')", &["not a valid regex"]),
        ("matches(device.driver, 'a[')", &["not a valid regex"]),
    ];
    for (expression, parts) in cases {
        let message = compile_error(expression);
        for part in *parts {
            assert!(message.contains(part), "{expression}: {message:?} lacks {part:?}");
        }
    }
}

#[test]
fn an_over_long_expression_is_rejected_before_parsing() {
    let long = format!("{}true", "true && ".repeat(MAX_EXPRESSION_LENGTH / 8));
    assert!(long.len() > MAX_EXPRESSION_LENGTH);
    let message = compile_error(&long);
    assert!(message.contains("more than the 10240 allowed"), "{message}");
    // At the limit, it compiles.
    let fits = format!("{}true", "true && ".repeat((MAX_EXPRESSION_LENGTH - 4) / 8));
    assert!(fits.len() <= MAX_EXPRESSION_LENGTH);
    assert!(Selector::compile(&fits).is_ok());
}

#[test]
fn a_second_match_of_a_device_is_served_from_the_cache() -> Result<(), CelError> {
    let selector = Selector::compile(r#"device.attributes["gpu.nvidia.com"].model == "A100""#)?;
    let (gpu, other) = (a100(), t4());
    assert_eq!(selector.matches(&gpu), Ok(true));
    assert_eq!(selector.matches(&gpu), Ok(true));
    assert_eq!(selector.evaluations.load(AtomicOrdering::Relaxed), 1);
    assert_eq!(selector.results.read().len(), 1);
    assert_eq!(selector.matches(&other), Ok(false));
    assert_eq!(selector.evaluations.load(AtomicOrdering::Relaxed), 2);
    // Errors are remembered too.
    let failing = Selector::compile(r#"device.attributes["x.com"].y == 1"#)?;
    let first = failing.matches(&gpu);
    assert!(first.is_err());
    assert_eq!(failing.matches(&gpu), first);
    assert_eq!(failing.evaluations.load(AtomicOrdering::Relaxed), 1);
    // A republished device (new uid) is evaluated anew.
    let republished = Device { uid: next_uid(), ..gpu.clone() };
    assert_eq!(selector.matches(&republished), Ok(true));
    assert_eq!(selector.evaluations.load(AtomicOrdering::Relaxed), 3);
    Ok(())
}

#[test]
fn compile_cached_shares_one_selector_per_expression() -> Result<(), CelError> {
    let expression = r#"device.driver == "cached.example.com""#;
    let a = compile_cached(expression)?;
    let b = compile_cached(expression)?;
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(a.expression(), expression);
    let other = compile_cached(r#"device.driver == "other.example.com""#)?;
    assert!(!Arc::ptr_eq(&a, &other));
    assert!(compile_cached("device.driver ==").is_err());
    assert_eq!(compile_cached("device.driver ==").err(), compile_cached("device.driver ==").err());
    Ok(())
}

#[test]
fn selectors_are_shared_across_threads() -> Result<(), CelError> {
    let selector = compile_cached(r#"device.capacity["gpu.nvidia.com"].memory.compareTo(quantity("32Gi")) > 0"#)?;
    let devices: Vec<Device> = (0..64).map(|i| if i % 2 == 0 { a100() } else { t4() }).collect();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for (i, device) in devices.iter().enumerate() {
                    assert_eq!(selector.matches(device), Ok(i % 2 == 0));
                }
            });
        }
    });
    assert_eq!(selector.results.read().len(), 64);
    Ok(())
}

/// Evaluates `expression` (which must compile) against an A100.
fn eval(expression: &str) -> Result<bool, CelError> {
    Selector::compile(expression)?.matches(&a100())
}

#[test]
fn quantity_library() {
    let cases = [
        r#"quantity("200M").compareTo(quantity("0.2G")) == 0"#,
        r#"quantity("50M").compareTo(quantity("50Mi")) == -1"#,
        r#"quantity("50Mi").compareTo(quantity("50M")) == 1"#,
        r#"quantity("1Gi") == quantity("1024Mi")"#,
        r#"quantity("1Gi") != quantity("1G")"#,
        r#"quantity("50k").add(quantity("20k")) == quantity("70k")"#,
        r#"quantity("50k").add(20) == quantity("50020")"#,
        r#"quantity("50k").sub(20000) == quantity("30k")"#,
        r#"quantity("50k").add(20).sub(quantity("100k")).sub(-50000) == quantity("20")"#,
        r#"quantity("1500m").mul(2) == quantity("3")"#,
        r#"quantity("-3").sign() == -1 && sign(quantity("0")) == 0"#,
        r#"quantity("1.5").isInteger() == false && quantity("2k").asInteger() == 2000"#,
        r#"quantity("1.5").asApproximateFloat() == 1.5"#,
        r#"isQuantity("10Gi") && !isQuantity("ten") && !isQuantity(" 1")"#,
        r#"quantity("1E").asInteger() == 1000000000000000000"#,
    ];
    for expression in cases {
        assert_eq!(eval(expression), Ok(true), "{expression}");
    }
    let failing = eval(r#"quantity("abc").sign() == 0"#);
    assert!(matches!(&failing, Err(CelError(m)) if m.contains("not a valid Kubernetes quantity")), "{failing:?}");
    let failing = eval(r#"quantity("1.5").asInteger() == 1"#);
    assert!(matches!(&failing, Err(CelError(m)) if m.contains("cannot convert value to integer")), "{failing:?}");
}

#[test]
fn semver_library() {
    let cases = [
        r#"semver("1.2.3").compareTo(semver("1.2.3")) == 0"#,
        r#"semver("1.2.3").compareTo(semver("2.0.0")) == -1"#,
        r#"semver("1.2.3").compareTo(semver("0.1.2")) == 1"#,
        r#"semver("1.0.0-alpha").isLessThan(semver("1.0.0"))"#,
        r#"semver("1.0.0-alpha.1").isLessThan(semver("1.0.0-alpha.beta"))"#,
        r#"semver("1.0.0-alpha.beta").isLessThan(semver("1.0.0-beta.2"))"#,
        r#"semver("1.0.0-beta.2").isLessThan(semver("1.0.0-beta.11"))"#,
        r#"semver("1.0.0-rc.1").isLessThan(semver("1.0.0"))"#,
        r#"semver("1.0.0+build.1") == semver("1.0.0+build.2")"#,
        r#"semver("10.20.30").major() == 10 && semver("10.20.30").minor() == 20 && semver("10.20.30").patch() == 30"#,
        r#"semver("v1.0", true) == semver("1.0.0") && semver("01.01.01", true) == semver("1.1.1")"#,
        r#"isSemver("1.0.0") && !isSemver("v1.0") && isSemver("v1.0", true) && !isSemver("1.0.0-")"#,
        r#"!isSemver("01.0.0") && !isSemver("1.0.0-01") && !isSemver("1.2") && !isSemver("1.2.3.4")"#,
    ];
    for expression in cases {
        assert_eq!(eval(expression), Ok(true), "{expression}");
    }
    let failing = eval(r#"semver("1.0").major() == 1"#);
    assert!(matches!(&failing, Err(CelError(m)) if m.contains("Major.Minor.Patch")), "{failing:?}");
}

#[test]
fn an_invalid_version_attribute_fails_only_where_read() -> Result<(), CelError> {
    let broken = device("gpu-9", "gpu.nvidia.com", &[("gpu.nvidia.com/driverVersion", version("5.x"))], &[], false);
    assert_eq!(Selector::compile(r#"device.driver == "gpu.nvidia.com""#)?.matches(&broken), Ok(true));
    let reads = Selector::compile(r#"device.attributes["gpu.nvidia.com"].driverVersion.major() == 5"#)?;
    assert!(matches!(reads.matches(&broken), Err(CelError(m)) if m.contains("parse semantic version")));
    Ok(())
}

#[test]
fn the_cost_limit_stops_runaway_expressions() -> Result<(), CelError> {
    let hundred = format!("[{}]", (0..100).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
    // 100^3 iterations: over the budget, and not absorbed by `|| true`.
    let runaway = format!("{hundred}.all(a, {hundred}.all(b, {hundred}.all(c, a + b + c >= 0))) || true");
    let result = Selector::compile(&runaway)?.matches(&a100());
    assert!(matches!(&result, Err(CelError(m)) if m.contains("cost limit exceeded")), "{result:?}");
    // 100^2 is well within it.
    let fine = format!("{hundred}.all(a, {hundred}.all(b, a + b >= 0))");
    assert_eq!(Selector::compile(&fine)?.matches(&a100()), Ok(true));
    // Doubling a string exhausts the budget long before memory.
    let doubling =
        (0..40).fold("'xxxxxxxxxxxxxxxx'".to_string(), |acc, i| format!("cel.bind(s{i}, {acc}, s{i} + s{i})"));
    let result = Selector::compile(&format!("size({doubling}) > 0"))?.matches(&a100());
    assert!(matches!(&result, Err(CelError(m)) if m.contains("cost limit exceeded")), "{result:?}");
    // `replace` checks what it would build before building it.
    let big = format!("cel.bind(s, '{}', s.replace('', s).size() > 0)", "y".repeat(5000));
    let result = Selector::compile(&big)?.matches(&a100());
    assert!(matches!(&result, Err(CelError(m)) if m.contains("cost limit exceeded")), "{result:?}");
    Ok(())
}

#[test]
fn macros_and_the_strings_extension_still_work_rewritten() {
    let cases = [
        "[1, 2, 3].map(x, x * 2) == [2, 4, 6]",
        "[1, 2, 3].map(x, x > 1, x * 10) == [20, 30]",
        "[1, 2, 3].filter(x, x % 2 == 1) == [1, 3]",
        "[1, 2, 3].exists_one(x, x == 2)",
        "![1, 2, 3].all(x, x < 3)",
        "['a', 'b'].join('-') == 'a-b' && ['a', 'b'].join() == 'ab'",
        "'a,b,c'.split(',').size() == 3",
        "'banana'.replace('a', 'o') == 'bonono' && 'banana'.replace('a', 'o', 1) == 'bonana'",
        "strings.quote('a') == '\"a\"'",
        "'%s=%d'.format(['x', 1]) == 'x=1'",
        "{'a': 1}.?a.hasValue() && !{'a': 1}.?b.hasValue()",
        "cel.bind(xs, [1, 2], cel.bind(ys, xs + xs, size(ys) == 4))",
        "type(1) == int",
        "device == device",
        "matches('nvidia', 'vid') && !'nvidia'.matches('^vid')",
    ];
    for expression in cases {
        assert_eq!(eval(expression), Ok(true), "{expression}");
    }
}

#[test]
fn deep_expressions_are_evaluated_on_a_big_stack_or_rejected() -> Result<(), CelError> {
    // 200 nested additions: within the nesting limit, too deep for the caller's stack.
    let deep = format!("{}1 > 0", "1 + ".repeat(200));
    let selector = Selector::compile(&deep)?;
    assert!(!selector.program.inline);
    assert_eq!(selector.matches(&a100()), Ok(true));
    let shallow = Selector::compile(r#"device.attributes["gpu.nvidia.com"].model == "A100""#)?;
    assert!(shallow.program.inline);
    // 2000 levels: rejected, without overflowing any stack.
    let message = compile_error(&format!("device{} == 1", ".x".repeat(2000)));
    assert!(message.contains("levels deep"), "{message}");
    let message = compile_error(&format!("{}1 > 0", "1 + ".repeat(2000)));
    assert!(message.contains("levels deep"), "{message}");
    Ok(())
}
