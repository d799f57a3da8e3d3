//! The example configurations under `manifests/config/`.

use std::path::PathBuf;

use serde_json::{Value, json};
use tessera_plugins::registry::Registry;

use crate::config::{ConfigError, default_config, describe, load_config};

fn manifest(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/config").join(name)
}

/// `describe` without the args, which `default.yaml` writes out and the defaults leave implicit.
fn plugins_only(mut v: Value) -> Value {
    if let Some(profiles) = v["profiles"].as_array_mut() {
        for p in profiles {
            if let Some(obj) = p.as_object_mut() {
                obj.remove("pluginConfig");
            }
        }
    }
    v
}

#[test]
fn default_yaml_is_the_defaults_written_out() {
    let r = Registry::builtin();
    let c = load_config(&manifest("default.yaml"), &r).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(plugins_only(describe(&c)), plugins_only(describe(&default_config(&r).unwrap())));
    assert_eq!(c.plugin_args["default-scheduler"]["NodeResourcesFit"]["scoringStrategy"]["type"], "LeastAllocated");
}

#[test]
fn binpack_yaml_has_a_most_allocated_tessera_profile() {
    let r = Registry::builtin();
    let c = load_config(&manifest("binpack.yaml"), &r).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.profiles.len(), 1);
    assert_eq!(c.profiles[0].scheduler_name, "tessera");
    assert_eq!(c.plugin_args["tessera"]["NodeResourcesFit"]["scoringStrategy"]["type"], "MostAllocated");
    let d = describe(&c);
    let fit = d["profiles"][0]["plugins"]["score"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "NodeResourcesFit")
        .cloned();
    // NodeResourcesFit scores (its Score is implemented), so bin packing takes effect.
    assert!(fit.is_some(), "{d:#}");
}

#[test]
fn describe_lists_every_point_with_weights() {
    let d = describe(&default_config(&Registry::builtin()).unwrap());
    assert_eq!(d["parallelism"], 16);
    assert_eq!(d["podInitialBackoffSeconds"], 1);
    assert_eq!(d["podMaxBackoffSeconds"], 10);
    let p = &d["profiles"][0];
    assert_eq!(p["schedulerName"], "default-scheduler");
    assert_eq!(p["plugins"].as_object().unwrap().len(), 12);
    assert_eq!(p["plugins"]["queueSort"], json!(["PrioritySort"]));
    assert!(p["plugins"]["score"].as_array().unwrap().contains(&json!({"name": "NodeResourcesFit", "weight": 1})));
    assert_eq!(p["plugins"]["bind"], json!(["DefaultBinder"]));
    assert_eq!(p["pluginConfig"], json!({}));
}

#[test]
fn gpu_profiles_load_with_their_strategies() {
    let r = Registry::builtin();
    for (file, strategy) in [
        ("gpu.yaml", "ModelAwareFGD"),
        ("gpu-cpu-aware.yaml", "CpuAwareFGD"),
        ("fgd.yaml", "FGD"),
        ("gpu-packing.yaml", "Packing"),
        ("gpu-spread.yaml", "Spread"),
        ("gpu-dot-product.yaml", "DotProduct"),
    ] {
        let c = load_config(&manifest(file), &r).unwrap();
        assert!(c.warnings.is_empty(), "{file}: {:?}", c.warnings);
        assert_eq!(c.plugin_args["tessera"]["GpuTopology"]["scoringStrategy"], strategy, "{file}");
    }
}

#[test]
fn a_missing_file_names_the_path() {
    let path = manifest("no-such-file.yaml");
    let e = load_config(&path, &Registry::builtin()).unwrap_err();
    assert!(matches!(&e, ConfigError::Io { file, .. } if file.ends_with("no-such-file.yaml")), "{e:?}");
    assert!(e.to_string().contains("no-such-file.yaml: cannot read"), "{e}");
}

#[test]
fn a_file_nested_too_deep_is_refused_before_parsing_naming_it() {
    let dir = std::env::temp_dir().join(format!("tessera-config-{}-deep", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("deep.yaml");
    let text = format!(
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles: {}{}\n",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    std::fs::write(&path, text).unwrap();
    let e = load_config(&path, &Registry::builtin()).unwrap_err();
    assert!(matches!(&e, ConfigError::Yaml { line: Some(3), column: Some(210), .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "{}: nested more than 200 levels deep at line 3, column 210; no KubeSchedulerConfiguration nests \
             that deep, so the file is refused before parsing",
            path.display()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}
