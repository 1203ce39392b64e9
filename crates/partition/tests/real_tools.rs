//! Round trips through outside checkers: sfdisk, sgdisk, blkid, partx, and the kernel
//! (loop device). Needs packages fdisk, gdisk, util-linux; the loop test needs root.
//! A missing tool fails the test with the package to install; nothing is skipped.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use d2l_partition::{write_partition_table, DiskIds, DiskLayout, TableKind};

const MIB: u64 = 1024 * 1024;
/// A filesystem size that is not a whole number of MiB, to exercise the rounding.
const FS_BYTES: u64 = 10 * MIB + 4096;
/// Partition sectors after rounding FS_BYTES up to 1 MiB.
const PART_SECTORS: u64 = 11 * 2048;
/// Linux root (x86-64), Discoverable Partitions Specification.
const LINUX_ROOT_X64: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";

/// Runs a tool, failing with the package to install when it is missing, and returns stdout.
fn run(tool: &str, package: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run `{tool}` ({e}): install package `{package}` (apt-get install {package})")
    });
    assert!(
        out.status.success(),
        "`{tool} {}` failed: {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("tool output is UTF-8")
}

fn ids() -> DiskIds {
    DiskIds::derive(&[0x5a; 32])
}

fn guid_string(g: [u8; 16]) -> String {
    uuid::Uuid::from_bytes(g)
        .hyphenated()
        .to_string()
        .to_uppercase()
}

fn boot_code() -> [u8; 440] {
    std::array::from_fn(|i| (i * 7 + 3) as u8)
}

/// Plans and writes a disk into a fresh temporary file.
fn make_disk(kind: TableKind, boot: Option<&[u8; 440]>) -> (tempfile::NamedTempFile, DiskLayout) {
    let layout = DiskLayout::plan(kind, FS_BYTES).unwrap();
    let tmp = tempfile::NamedTempFile::new().unwrap();
    write_partition_table(tmp.as_file(), &layout, &ids(), boot).unwrap();
    (tmp, layout)
}

fn sfdisk_json(path: &Path) -> serde_json::Value {
    let out = run("sfdisk", "fdisk", &["--json", path.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("sfdisk --json output");
    v["partitiontable"].clone()
}

fn check_mbr_with_sfdisk(path: &Path) {
    let t = sfdisk_json(path);
    assert_eq!(t["label"], "dos", "{t:#}");
    assert_eq!(t["unit"], "sectors", "{t:#}");
    assert_eq!(t["id"], format!("0x{:08x}", ids().mbr_signature), "{t:#}");
    let parts = t["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{t:#}");
    let p = &parts[0];
    assert_eq!(p["start"], 2048, "{t:#}");
    assert_eq!(p["size"], PART_SECTORS, "{t:#}");
    assert_eq!(p["type"], "83", "{t:#}");
    assert_eq!(p["bootable"], true, "{t:#}");
}

fn check_gpt_with_sfdisk(path: &Path, layout: &DiskLayout) {
    let t = sfdisk_json(path);
    assert_eq!(t["label"], "gpt", "{t:#}");
    assert_eq!(t["id"], guid_string(ids().disk_guid), "{t:#}");
    assert_eq!(t["firstlba"], 34, "{t:#}");
    assert_eq!(t["lastlba"], layout.disk_bytes / 512 - 34, "{t:#}");
    let parts = t["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 1, "{t:#}");
    let p = &parts[0];
    assert_eq!(p["start"], 2048, "{t:#}");
    assert_eq!(p["size"], PART_SECTORS, "{t:#}");
    assert_eq!(p["type"], LINUX_ROOT_X64, "{t:#}");
    assert_eq!(p["uuid"], guid_string(ids().partition_guid), "{t:#}");
    assert_eq!(p["name"], d2l_partition::PARTITION_NAME, "{t:#}");
    assert_eq!(p["attrs"], "LegacyBIOSBootable", "{t:#}");
}

fn check_sgdisk_verify(path: &Path) {
    let out = run("sgdisk", "gdisk", &["-v", path.to_str().unwrap()]);
    assert!(out.contains("No problems found"), "sgdisk -v:\n{out}");
}

fn check_blkid(path: &Path, pttype: &str, ptuuid: &str) {
    let out = run(
        "blkid",
        "util-linux",
        &["-p", "-o", "export", path.to_str().unwrap()],
    );
    assert!(
        out.lines().any(|l| l == format!("PTTYPE={pttype}")),
        "blkid:\n{out}"
    );
    assert!(
        out.lines().any(|l| l == format!("PTUUID={ptuuid}")),
        "blkid:\n{out}"
    );
}

fn check_partx(path: &Path) {
    let out = run(
        "partx",
        "util-linux",
        &[
            "--show",
            "--noheadings",
            "-o",
            "NR,START,SECTORS",
            path.to_str().unwrap(),
        ],
    );
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        fields,
        ["1", "2048", &PART_SECTORS.to_string()],
        "partx --show:\n{out}"
    );
}

fn read_at(file: &File, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, offset).unwrap();
    buf
}

#[test]
fn mbr_checked_by_sfdisk_blkid_partx() {
    let (tmp, layout) = make_disk(TableKind::Mbr, None);
    assert_eq!(tmp.as_file().metadata().unwrap().len(), layout.disk_bytes);
    check_mbr_with_sfdisk(tmp.path());
    check_blkid(tmp.path(), "dos", &format!("{:08x}", ids().mbr_signature));
    check_partx(tmp.path());
    assert_eq!(
        read_at(tmp.as_file(), 0, 440),
        vec![0; 440],
        "no boot code: zeros"
    );
}

#[test]
fn gpt_checked_by_sfdisk_sgdisk_blkid_partx() {
    let (tmp, layout) = make_disk(TableKind::Gpt, None);
    assert_eq!(tmp.as_file().metadata().unwrap().len(), layout.disk_bytes);
    check_gpt_with_sfdisk(tmp.path(), &layout);
    check_sgdisk_verify(tmp.path());
    check_blkid(
        tmp.path(),
        "gpt",
        &guid_string(ids().disk_guid).to_lowercase(),
    );
    check_partx(tmp.path());
}

#[test]
fn boot_code_lands_at_0_and_table_survives() {
    let code = boot_code();
    let (mbr, _) = make_disk(TableKind::Mbr, Some(&code));
    assert_eq!(read_at(mbr.as_file(), 0, 440), code.to_vec());
    check_mbr_with_sfdisk(mbr.path());
    check_partx(mbr.path());

    let (gpt, layout) = make_disk(TableKind::Gpt, Some(&code));
    assert_eq!(read_at(gpt.as_file(), 0, 440), code.to_vec());
    check_gpt_with_sfdisk(gpt.path(), &layout);
    check_sgdisk_verify(gpt.path());
}

#[test]
fn partition_contents_are_not_touched() {
    for kind in [TableKind::Mbr, TableKind::Gpt] {
        let layout = DiskLayout::plan(kind, FS_BYTES).unwrap();
        let tmp = tempfile::NamedTempFile::new().unwrap();
        let f = tmp.as_file();
        f.set_len(layout.disk_bytes).unwrap();
        let end = layout.partition_start + layout.partition_bytes;
        f.write_all_at(&[0xfe; 4096], layout.partition_start)
            .unwrap();
        f.write_all_at(&[0xfd; 4096], end - 4096).unwrap();
        write_partition_table(f, &layout, &ids(), None).unwrap();
        assert_eq!(
            read_at(f, layout.partition_start, 4096),
            vec![0xfe; 4096],
            "{kind}"
        );
        assert_eq!(read_at(f, end - 4096, 4096), vec![0xfd; 4096], "{kind}");
    }
}

#[test]
fn same_inputs_same_bytes_and_sparse() {
    for kind in [TableKind::Mbr, TableKind::Gpt] {
        let code = boot_code();
        let (a, layout) = make_disk(kind, Some(&code));
        let (b, _) = make_disk(kind, Some(&code));
        let a_bytes = std::fs::read(a.path()).unwrap();
        assert_eq!(
            a_bytes,
            std::fs::read(b.path()).unwrap(),
            "{kind} not deterministic"
        );
        assert_eq!(a_bytes.len() as u64, layout.disk_bytes);
        // Only table sectors are written: well under 1 MiB of an 11-13 MiB file allocated.
        let allocated = a.as_file().metadata().unwrap().blocks() * 512;
        assert!(
            allocated < 256 * 1024,
            "{kind}: {allocated} bytes allocated, expected sparse"
        );
    }
}

#[test]
fn longer_file_is_refused() {
    let layout = DiskLayout::plan(TableKind::Gpt, FS_BYTES).unwrap();
    let tmp = tempfile::NamedTempFile::new().unwrap();
    tmp.as_file().set_len(layout.disk_bytes + 512).unwrap();
    let err = write_partition_table(tmp.as_file(), &layout, &ids(), None).unwrap_err();
    assert!(
        matches!(err, d2l_partition::Error::DiskFileTooLarge { .. }),
        "{err}"
    );
}

/// Detaches the loop device when dropped, also when an assertion fails.
struct Loop(String);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

/// The loop device's partition agrees (needs root and /dev/loop-control).
///
/// `losetup -P` asks the kernel to scan the table. Some kernels (this project's CI sandbox,
/// 6.18 "fc") create no `loopNp1` even for tables sfdisk wrote; there we fall back to
/// `partx --add`, which parses with libblkid and registers the partition through BLKPG, so the
/// check is then of the block device rather than of the kernel's own parser.
#[test]
fn loop_device_sees_partition() {
    for kind in [TableKind::Mbr, TableKind::Gpt] {
        let (tmp, _) = make_disk(kind, Some(&boot_code()));
        let dev = run(
            "losetup",
            "util-linux",
            &["-P", "--show", "-f", tmp.path().to_str().unwrap()],
        );
        let dev = Loop(dev.trim().to_owned());
        let name = Path::new(&dev.0)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let sys = format!("/sys/class/block/{name}p1");
        if !Path::new(&sys).exists() {
            run("partx", "util-linux", &["--add", &dev.0]);
        }
        let read = |f: &str| -> u64 {
            let p = format!("{sys}/{f}");
            std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("{kind}: kernel did not create {name}p1 ({p}: {e})"))
                .trim()
                .parse()
                .unwrap()
        };
        assert_eq!(read("start"), 2048, "{kind}");
        assert_eq!(read("size"), PART_SECTORS, "{kind}");
    }
}

/// EFI System Partition, as sfdisk names the GPT type.
const EFI_SYSTEM: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

#[test]
fn an_esp_is_partition_1_and_the_root_partition_2_for_sfdisk_and_sgdisk() {
    for kind in [TableKind::Mbr, TableKind::Gpt] {
        let layout = DiskLayout::plan_with_esp(kind, Some(64 * MIB), FS_BYTES).unwrap();
        let tmp = tempfile::NamedTempFile::new().unwrap();
        write_partition_table(tmp.as_file(), &layout, &ids(), Some(&boot_code())).unwrap();
        let t = sfdisk_json(tmp.path());
        let parts = t["partitions"].as_array().unwrap();
        assert_eq!(parts.len(), 2, "{t:#}");
        let (esp, root) = (&parts[0], &parts[1]);
        assert_eq!(esp["start"], 2048, "{t:#}");
        assert_eq!(esp["size"], 64 * 2048, "{t:#}");
        assert_eq!(root["start"], 65 * 2048, "{t:#}");
        assert_eq!(root["size"], PART_SECTORS, "{t:#}");
        match kind {
            TableKind::Mbr => {
                assert_eq!(esp["type"], "ef", "{t:#}");
                assert!(esp.get("bootable").is_none(), "{t:#}");
                assert_eq!(root["type"], "83", "{t:#}");
                assert_eq!(root["bootable"], true, "{t:#}");
            }
            TableKind::Gpt => {
                assert_eq!(esp["type"], EFI_SYSTEM, "{t:#}");
                assert_eq!(esp["uuid"], guid_string(ids().esp_guid), "{t:#}");
                assert_eq!(esp["name"], d2l_partition::ESP_NAME, "{t:#}");
                assert_eq!(root["type"], LINUX_ROOT_X64, "{t:#}");
                assert_eq!(root["attrs"], "LegacyBIOSBootable", "{t:#}");
                check_sgdisk_verify(tmp.path());
            }
        }
        let verify = Command::new("sfdisk")
            .args(["--verify", tmp.path().to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "sfdisk --verify: {}",
            String::from_utf8_lossy(&verify.stdout)
        );
    }
}

#[test]
fn an_arm64_root_partition_has_the_arm64_root_type() {
    let layout = DiskLayout::plan_with_esp(TableKind::Gpt, Some(64 * MIB), FS_BYTES)
        .unwrap()
        .for_arch(d2l_partition::RootArch::Aarch64);
    let tmp = tempfile::NamedTempFile::new().unwrap();
    write_partition_table(tmp.as_file(), &layout, &ids(), None).unwrap();
    let t = sfdisk_json(tmp.path());
    assert_eq!(
        t["partitions"][1]["type"], "B921B045-1DF0-41C3-AF44-4C6F280D3FAE",
        "{t:#}"
    );
    check_sgdisk_verify(tmp.path());
}
