//! `cargo xtask golden [--record]`: a byte-for-byte regression guard for refactors.
//!
//! Builds the release d2l, runs [`CASES`] on the Debian fixture (`$FIX`) into a temporary
//! directory (`$OUT`, removed afterwards; each output is removed once hashed) and takes the
//! sha256 of each output. `--record` builds every case twice, refuses an output that differs
//! between the two, and writes [`RECORD`]; without it the digests are compared with the
//! record, case by case, and any difference fails the task. The record names the fixture key
//! and the host's syslinux packages (their files go into the boot sector and /boot): when
//! either differs the digests cannot match, so the check says so and stops.
//!
//! Every case runs with `SOURCE_DATE_EPOCH` fixed and no root password (its hash is salted),
//! so the same code gives the same bytes.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::fixtures;
use crate::util::{self, cargo, step};

/// The record, relative to the workspace root.
const RECORD: &str = "xtask/golden/digests.txt";
/// `SOURCE_DATE_EPOCH` of every case (2024-01-01T00:00:00Z).
const EPOCH: &str = "1704067200";
/// The host packages whose files d2l puts on a bootable disk.
const SYSLINUX_PACKAGES: &[&str] = &["syslinux", "syslinux-common"];

/// (name, d2l arguments): `$FIX` is the fixture directory, `$OUT` the output directory.
const CASES: &[(&str, &str)] = &[
    (
        "export-tar",
        "export oci:$FIX/debian-oci:bookworm -o $OUT/rootfs.tar",
    ),
    (
        "raw-mbr",
        "build oci:$FIX/debian-oci:bookworm -o $OUT/disk.img --table mbr",
    ),
    (
        "raw-gpt",
        "build oci:$FIX/debian-oci:bookworm -o $OUT/disk.img --table gpt",
    ),
    (
        "ext4-none",
        "build oci:$FIX/debian-oci:bookworm -o $OUT/rootfs.ext4 --table none",
    ),
    (
        "qcow2",
        "build oci:$FIX/debian-oci:bookworm -o $OUT/disk.qcow2",
    ),
    (
        "qcow2-compress",
        "build oci:$FIX/debian-oci:bookworm -o $OUT/disk.qcow2 --compress",
    ),
    ("vdi", "build oci:$FIX/debian-oci:bookworm -o $OUT/disk.vdi"),
    (
        "vmdk",
        "build oci:$FIX/debian-oci:bookworm -o $OUT/disk.vmdk",
    ),
    (
        "vmdk-stream",
        "build oci:$FIX/debian-oci:bookworm -o $OUT/disk.vmdk --vmdk-subformat stream",
    ),
    ("vhd", "build oci:$FIX/debian-oci:bookworm -o $OUT/disk.vhd"),
    (
        "vhd-fixed",
        "build oci:$FIX/debian-oci:bookworm -o $OUT/disk.vhd --vhd-subformat fixed",
    ),
    (
        "vhdx",
        "build oci:$FIX/debian-oci:bookworm -o $OUT/disk.vhdx",
    ),
    (
        "docker-archive-raw-mbr",
        "build docker-archive:$FIX/debian-docker-archive.tar:d2l/debian:bookworm \
         -o $OUT/disk.img --table mbr",
    ),
    (
        "oci-archive-raw-mbr",
        "build oci-archive:$FIX/debian-oci-archive.tar:bookworm -o $OUT/disk.img --table mbr",
    ),
];

/// What the record holds besides the digests.
struct Setup {
    /// The fixture's `manifest.json` key.
    key: String,
    /// `PACKAGE VERSION, ...` of [`SYSLINUX_PACKAGES`].
    syslinux: String,
}

/// A line of the record.
#[derive(Debug, PartialEq)]
struct Recorded {
    digest: String,
    name: String,
    args: String,
}

/// Runs the cases; records their digests (`record`) or checks them against the record.
pub fn run(record: bool) -> Result<()> {
    let fix = step("fixtures", fixtures::ensure)?;
    let manifest_path = fix.join(fixtures::MANIFEST_FILE);
    let manifest: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(&manifest_path).with_context(|| manifest_path.display().to_string())?,
    )?;
    let setup = Setup {
        key: manifest["key"]
            .as_str()
            .context("manifest without key")?
            .into(),
        syslinux: util::output(
            Command::new("dpkg-query")
                .args(["-W", "-f", "${Package} ${Version}, "])
                .args(SYSLINUX_PACKAGES),
        )?
        .trim_end_matches([',', ' '])
        .into(),
    };
    let record_path = util::workspace_root().join(RECORD);
    let recorded = if record {
        None
    } else {
        let (was, digests) = parse(&fs::read_to_string(&record_path).with_context(|| {
            format!(
                "{}: record it with `cargo xtask golden --record`",
                record_path.display()
            )
        })?)?;
        if was.key != setup.key {
            bail!(
                "{RECORD} was recorded against fixture key {}, but the fixture is now {}: \
                 the digests cannot match; record them again at the commit before the change",
                was.key,
                setup.key
            );
        }
        if was.syslinux != setup.syslinux {
            bail!(
                "{RECORD} was recorded with {}, but this host has {}: the digests cannot \
                 match; record them again at the commit before the change",
                was.syslinux,
                setup.syslinux
            );
        }
        Some(digests)
    };
    step("cargo build --release -p d2l", || {
        util::run(cargo().args(["build", "--release", "-p", "d2l"]))
    })?;
    let d2l = util::target_dir()?.join("release/d2l");
    let out = std::env::temp_dir().join(format!("xtask-golden-{}", std::process::id()));
    fs::create_dir_all(&out).with_context(|| out.display().to_string())?;
    let runs = if record { 2 } else { 1 };
    let digests = step("golden cases", || digest_cases(&d2l, &fix, &out, runs));
    util::remove_tree(&out)?;
    let digests = digests?;

    let Some(recorded) = recorded else {
        let mut text = format!(
            "# d2l golden digests: sha256, case, d2l arguments ($FIX: the fixture, $OUT: a\n\
             # temporary directory; SOURCE_DATE_EPOCH={EPOCH}). `cargo xtask golden` checks them.\n\
             # made by: cargo xtask golden --record\n\
             # fixture key: {}\n# syslinux: {}\n",
            setup.key, setup.syslinux
        );
        for ((name, args), digest) in CASES.iter().zip(&digests) {
            text += &format!("{digest}  {name}  {args}\n");
        }
        fs::write(&record_path, text).with_context(|| record_path.display().to_string())?;
        println!("recorded {} cases in {RECORD}", CASES.len());
        return Ok(());
    };
    let mut bad = 0;
    for ((name, args), digest) in CASES.iter().zip(&digests) {
        let verdict = match recorded.iter().find(|r| r.name == *name) {
            None => "NEW: not in the record".to_string(),
            Some(r) if r.args != *args => format!("CHANGED: arguments recorded `{}`", r.args),
            Some(r) if r.digest != *digest => {
                format!("MISMATCH: recorded {}, now {digest}", r.digest)
            }
            Some(_) => {
                println!("{name:<24} OK");
                continue;
            }
        };
        bad += 1;
        println!("{name:<24} {verdict}");
    }
    for r in &recorded {
        if !CASES.iter().any(|(n, _)| *n == r.name) {
            bad += 1;
            println!("{:<24} MISSING: recorded, no longer a case", r.name);
        }
    }
    if bad > 0 {
        bail!("{bad} golden case(s) differ from {RECORD}");
    }
    println!("all {} golden cases match {RECORD}", CASES.len());
    Ok(())
}

/// The sha256 of each case's output, each built `runs` times (all must agree).
fn digest_cases(d2l: &Path, fix: &Path, out: &Path, runs: usize) -> Result<Vec<String>> {
    let mut digests = Vec::new();
    for (name, args) in CASES {
        let argv: Vec<String> = args
            .split_whitespace()
            .map(|a| {
                a.replace("$FIX", &fix.to_string_lossy())
                    .replace("$OUT", &out.to_string_lossy())
            })
            .collect();
        let output = argv
            .iter()
            .skip_while(|a| *a != "-o")
            .nth(1)
            .context("a case without -o")?;
        let mut seen: Vec<String> = Vec::new();
        for _ in 0..runs {
            let start = Instant::now();
            util::run_silent(
                Command::new(d2l)
                    .args(&argv)
                    .env("SOURCE_DATE_EPOCH", EPOCH),
            )
            .with_context(|| format!("case {name}"))?;
            seen.push(sha256_file(Path::new(output))?);
            fs::remove_file(output).with_context(|| output.clone())?;
            println!(
                "    {name}: {} ({})",
                seen[seen.len() - 1],
                util::secs(start.elapsed())
            );
        }
        if seen.iter().any(|d| *d != seen[0]) {
            bail!("case {name} is not deterministic: {}", seen.join(" vs "));
        }
        digests.push(seen.swap_remove(0));
    }
    Ok(digests)
}

/// The sha256 of a file, in hex.
fn sha256_file(path: &Path) -> Result<String> {
    Ok(util::sha256_file(path)?.0.hex().to_owned())
}

/// Reads a record: its setup and its case lines.
fn parse(text: &str) -> Result<(Setup, Vec<Recorded>)> {
    let header = |label: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(label))
            .map(String::from)
            .with_context(|| format!("{RECORD}: no `{label}` line"))
    };
    let setup = Setup {
        key: header("# fixture key: ")?,
        syslinux: header("# syslinux: ")?,
    };
    let mut cases = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let mut parts = line.splitn(3, "  ");
        let (Some(digest), Some(name), Some(args)) = (parts.next(), parts.next(), parts.next())
        else {
            bail!("{RECORD}: bad line `{line}`");
        };
        cases.push(Recorded {
            digest: digest.into(),
            name: name.into(),
            args: args.into(),
        });
    }
    Ok((setup, cases))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_records() {
        let text = "# made by: cargo xtask golden --record\n# fixture key: 0123\n\
                    # syslinux: syslinux 6, syslinux-common 6\n\
                    abcd  raw-mbr  build oci:$FIX/x -o $OUT/disk.img --table mbr\n";
        let (setup, cases) = parse(text).unwrap();
        assert_eq!(setup.key, "0123");
        assert_eq!(setup.syslinux, "syslinux 6, syslinux-common 6");
        assert_eq!(
            cases,
            [Recorded {
                digest: "abcd".into(),
                name: "raw-mbr".into(),
                args: "build oci:$FIX/x -o $OUT/disk.img --table mbr".into(),
            }]
        );
    }

    #[test]
    fn case_names_are_unique_and_single_words() {
        for (i, (name, args)) in CASES.iter().enumerate() {
            assert!(!name.contains(' ') && !args.contains("  "), "{name}");
            assert!(CASES[..i].iter().all(|(n, _)| n != name), "{name}");
        }
    }
}
