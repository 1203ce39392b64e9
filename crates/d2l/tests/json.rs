//! `d2l build --json` and `d2l convert --json` (issue 18): one JSON object on standard
//! output, valid against the schemas kept in docs/, whose values are what the disk holds as
//! independent tools read it (sfdisk for the table, blkid for the filesystem, qemu-img for
//! the converted file) and what the fixture's manifest says.

mod common;

use std::path::Path;
use std::process::Command;

use common::{run_ok, stderr};
use serde_json::Value;

/// The schema in docs/, parsed.
fn schema(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Checks `value` against the part of JSON Schema the schemas use: `type` (one or a list),
/// `enum`, `required`, `properties`, `additionalProperties: false`, `items`, `minimum`.
/// Returns what is wrong, with the path to it.
fn violations(schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    let type_name = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            _ => panic!("{at}: bad type in schema"),
        };
        let actual = type_name(value);
        let ok = allowed.contains(&actual) || (actual == "integer" && allowed.contains(&"number"));
        if !ok {
            wrong.push(format!("{at}: {actual}, expected {allowed:?}"));
        }
    }
    if let Some(Value::Array(options)) = schema.get("enum") {
        if !options.contains(value) {
            wrong.push(format!("{at}: {value} not one of {options:?}"));
        }
    }
    if let (Some(min), Some(n)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) {
        if n < min {
            wrong.push(format!("{at}: {n} < {min}"));
        }
    }
    if let Value::Object(object) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        for key in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = key.as_str().unwrap();
            if !object.contains_key(key) {
                wrong.push(format!("{at}: no {key}"));
            }
        }
        for (key, item) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(sub) => wrong.extend(violations(sub, item, &format!("{at}.{key}"))),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    wrong.push(format!("{at}: {key} is not in the schema"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Value::Array(list)) = (schema.get("items"), value) {
        for (i, item) in list.iter().enumerate() {
            wrong.extend(violations(items, item, &format!("{at}[{i}]")));
        }
    }
    wrong
}

fn parse_report(out: &std::process::Output, schema_name: &str) -> Value {
    assert!(out.status.success(), "{}", stderr(out));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "one line of JSON: {text}");
    let report: Value = serde_json::from_str(&text).unwrap();
    let wrong = violations(&schema(schema_name), &report, "$");
    assert!(wrong.is_empty(), "{schema_name}: {wrong:#?}\n{report:#}");
    report
}

#[test]
fn the_schema_check_finds_what_is_wrong() {
    let schema = schema("build-report.schema.json");
    let wrong = violations(
        &schema,
        &serde_json::json!({"format": "iso", "extra": 1}),
        "$",
    );
    assert!(wrong.iter().any(|w| w.contains("no output")), "{wrong:?}");
    assert!(
        wrong.iter().any(|w| w.contains("\"iso\" not one of")),
        "{wrong:?}"
    );
    assert!(
        wrong
            .iter()
            .any(|w| w.contains("extra is not in the schema")),
        "{wrong:?}"
    );
}

#[test]
fn build_and_convert_reports_say_what_the_disk_holds() {
    let fixture = d2l_testkit::debian();
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("linux.img");
    let out = Command::new(env!("CARGO_BIN_EXE_d2l"))
        .args(["build", "--json", "--table", "gpt", &fixture.oci, "-o"])
        .arg(&disk)
        .output()
        .unwrap();
    let report = parse_report(&out, "build-report.schema.json");
    assert_eq!(report["output"], disk.display().to_string());
    assert_eq!(report["format"], "raw");
    assert_eq!(report["table"], "gpt");
    assert_eq!(report["firmware"], "hybrid");
    let file_bytes = std::fs::metadata(&disk).unwrap().len();
    assert_eq!(report["file_bytes"], file_bytes);
    assert_eq!(
        report["virtual_bytes"], file_bytes,
        "a raw file is the disk"
    );
    assert_eq!(report["image"]["manifest_digest"], fixture.manifest_digest);
    assert_eq!(report["image"]["config_digest"], fixture.config_digest);
    assert_eq!(report["image"]["platform"], "linux/amd64");
    let kernel = report["kernel"].as_str().unwrap();
    assert!(kernel.starts_with("/boot/vmlinuz-"), "{kernel}");
    assert!(report["initrd"]
        .as_str()
        .unwrap()
        .starts_with("/boot/initrd.img-"));

    // The table as sfdisk reads it.
    let table: Value =
        serde_json::from_str(&run_ok("sfdisk", &["-J", disk.to_str().unwrap()])).unwrap();
    let listed = table["partitiontable"]["partitions"].as_array().unwrap();
    let reported = report["partitions"].as_array().unwrap();
    assert_eq!(reported.len(), 2);
    assert_eq!(listed.len(), reported.len());
    for (p, s) in reported.iter().zip(listed) {
        assert_eq!(
            p["start"].as_u64().unwrap(),
            s["start"].as_u64().unwrap() * 512
        );
        assert_eq!(
            p["size"].as_u64().unwrap(),
            s["size"].as_u64().unwrap() * 512
        );
        assert_eq!(p["type"], s["type"]);
        assert_eq!(
            p["uuid"].as_str().unwrap().to_uppercase(),
            s["uuid"].as_str().unwrap()
        );
    }
    assert_eq!(reported[0]["role"], "esp");
    assert_eq!(reported[1]["role"], "root");
    // The filesystem as blkid reads it, where the report says it is.
    let offset = report["filesystem"]["offset"].as_u64().unwrap();
    assert_eq!(offset, reported[1]["start"].as_u64().unwrap());
    let uuid = run_ok(
        "blkid",
        &[
            "-p",
            "-o",
            "value",
            "-s",
            "UUID",
            "-O",
            &offset.to_string(),
            disk.to_str().unwrap(),
        ],
    );
    assert_eq!(uuid.trim(), report["filesystem"]["uuid"]);

    // convert: the same disk as VDI, as qemu-img reads it.
    let vdi = dir.path().join("linux.vdi");
    let out = Command::new(env!("CARGO_BIN_EXE_d2l"))
        .args(["convert", "--json"])
        .arg(&disk)
        .arg(&vdi)
        .output()
        .unwrap();
    let converted = parse_report(&out, "convert-report.schema.json");
    assert_eq!(converted["input_format"], "raw");
    assert_eq!(converted["format"], "vdi");
    assert_eq!(converted["virtual_bytes"], file_bytes);
    assert_eq!(
        converted["file_bytes"],
        std::fs::metadata(&vdi).unwrap().len()
    );
    let info: Value = serde_json::from_str(&run_ok(
        "qemu-img",
        &["info", "--output", "json", vdi.to_str().unwrap()],
    ))
    .unwrap();
    assert_eq!(info["format"], "vdi");
    assert_eq!(info["virtual-size"], converted["virtual_bytes"]);
}
