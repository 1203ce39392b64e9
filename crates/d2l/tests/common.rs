//! Running the d2l binary in tests.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Runs `d2l ARGS`, returning its output.
pub fn d2l(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_d2l"))
        .args(args)
        .env_remove("D2L_LOG")
        .output()
        .expect("run d2l")
}

/// Runs `program ARGS`, panicking unless it succeeds (with both its outputs); returns its
/// standard output.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    d2l_testkit::run_ok_in(Path::new("."), program, args)
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a failed run: exit code 1, one error line that contains every `needles` string,
/// and nothing left in `dir` but the files that were there before (no output, no temporary).
pub fn assert_clean_failure(out: &Output, dir: &Path, before: &[String], needles: &[&str]) {
    assert_clean_failure_code(out, 1, dir, before, needles);
}

/// [`assert_clean_failure`] with another exit code (an image builder's own).
pub fn assert_clean_failure_code(
    out: &Output,
    code: i32,
    dir: &Path,
    before: &[String],
    needles: &[&str],
) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "exit code; stderr: {err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("d2l: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "exactly one error line in: {err}");
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{needle:?} not in error line {:?}",
            lines[0]
        );
    }
    assert_eq!(
        list_dir(dir),
        before,
        "files left behind in {}",
        dir.display()
    );
}

/// Names in a directory, sorted.
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The report schema `name` in docs/, parsed.
pub fn schema(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Checks `value` against the part of JSON Schema the schemas use: `type` (one or a list),
/// `enum`, `required`, `properties`, `additionalProperties: false`, `items`, `minimum`.
/// Returns what is wrong, with the path to it.
pub fn violations(schema: &Value, value: &Value, at: &str) -> Vec<String> {
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

/// The one line of JSON a successful run printed, checked against the schema `schema_name`.
pub fn parse_report(out: &std::process::Output, schema_name: &str) -> Value {
    assert!(out.status.success(), "{}", stderr(out));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "one line of JSON: {text}");
    let report: Value = serde_json::from_str(&text).unwrap();
    let wrong = violations(&schema(schema_name), &report, "$");
    assert!(wrong.is_empty(), "{schema_name}: {wrong:#?}\n{report:#}");
    report
}
