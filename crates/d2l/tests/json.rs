//! `d2l build --json` and `d2l convert --json` (issue 18): one JSON object on standard
//! output, valid against the schemas kept in docs/, whose values are what the disk holds as
//! independent tools read it (sfdisk for the table, blkid for the filesystem, qemu-img for
//! the converted file) and what the fixture's manifest says.

mod common;

use std::process::Command;

use common::{parse_report, run_ok, schema, violations};
use serde_json::Value;

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
    assert_eq!(report["bundle"], Value::Null);
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
