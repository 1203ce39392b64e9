//! The files other tools import, built from the Debian fixture and read back by readers that
//! know nothing of d2l: `-o vm.ova` (GNU tar for the members and their order, Python's
//! xml.etree for the OVF against what DMTF's schema requires, sha256sum for the manifest,
//! qemu-img for the VMDK), `-o image.tar.gz` (GNU tar and Python's tarfile for the sparse
//! `disk.raw`, qemu-img for its bytes) and `-o debian.box` (tar, serde_json for
//! metadata.json, `ruby -c` for the Vagrantfile, qemu-img for box.img, debugfs for the
//! vagrant user inside). Each holds the disk the raw build holds; building twice gives the
//! same bytes. Nothing is booted: the raw disk they are compared with is, by other tests.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{d2l, parse_report, run_ok, stderr};
use d2l_testkit::{qemu_img, run_ok_in};
use serde_json::Value;

const GIB: u64 = 1 << 30;

/// Runs `d2l ARGS`, asserting success; returns standard error.
fn ok(args: &[&str]) -> String {
    let out = d2l(args);
    assert!(out.status.success(), "d2l {args:?}: {}", stderr(&out));
    stderr(&out)
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The Debian fixture built to a raw disk once, for every test here to compare with.
fn raw_build() -> &'static (tempfile::TempDir, PathBuf, String) {
    static RAW: OnceLock<(tempfile::TempDir, PathBuf, String)> = OnceLock::new();
    RAW.get_or_init(|| {
        let source = d2l_testkit::debian().oci;
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("linux.img");
        ok(&["build", &source, "-o", s(&raw)]);
        (dir, raw, source)
    })
}

/// `tar -tv` of an archive (`-z` in `extra` for gzip): (mode, owner, size, name) of each
/// member, in order.
fn members(archive: &Path, extra: &[&str]) -> Vec<(String, String, u64, String)> {
    let mut args = vec!["--numeric-owner", "-tv"];
    args.extend_from_slice(extra);
    args.extend(["-f", s(archive)]);
    run_ok("tar", &args)
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (
                f[0].to_owned(),
                f[1].to_owned(),
                f[2].parse().unwrap(),
                f[5..].join(" "),
            )
        })
        .collect()
}

/// Asserts that building `name` again with `args` gives the same bytes as `first`.
fn assert_rebuilt_identical(first: &Path, args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let again = dir.path().join(first.file_name().unwrap());
    let mut all = args.to_vec();
    all.extend(["-o", s(&again)]);
    ok(&all);
    let same = std::fs::read(first).unwrap() == std::fs::read(&again).unwrap();
    assert!(
        same,
        "building {} twice gave different bytes",
        first.display()
    );
}

/// Reads the OVF with Python's xml.etree and checks what DSP0243 1.0 and its schema
/// (DSP8023) require: Envelope with References/File (id, href), a DiskSection with Info and
/// Disk (capacity, diskId, fileRef, format), a NetworkSection with Info and named Networks,
/// and a VirtualSystem (id, Info) with an OperatingSystemSection (id, Info) and a
/// VirtualHardwareSection (Info, Items with InstanceID, ResourceType and ElementName).
/// Prints what the machine is, as JSON.
const OVF_CHECK: &str = r#"
import json, sys
import xml.etree.ElementTree as ET
OVF = "http://schemas.dmtf.org/ovf/envelope/1"
RASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VMW = "http://www.vmware.com/schema/ovf"
o = lambda name: "{%s}%s" % (OVF, name)
a = lambda name: "{%s}%s" % (OVF, name)
r = lambda name: "{%s}%s" % (RASD, name)
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == o("Envelope"), root.tag
assert root.get(a("version")) == "1.0"
def one(parent, tag):
    found = parent.findall(tag)
    assert len(found) == 1, (tag, len(found))
    return found[0]
def info(section):
    assert (one(section, o("Info")).text or "").strip(), section.tag
files = one(root, o("References")).findall(o("File"))
assert files, "no References/File"
for f in files:
    assert f.get(a("id")) and f.get(a("href")), f.attrib
disks = one(root, o("DiskSection"))
info(disks)
disk = one(disks, o("Disk"))
for attr in ("capacity", "diskId", "fileRef", "format"):
    assert disk.get(a(attr)), attr
assert disk.get(a("fileRef")) in [f.get(a("id")) for f in files]
nets = one(root, o("NetworkSection"))
info(nets)
networks = [n.get(a("name")) for n in nets.findall(o("Network"))]
assert networks and all(networks), networks
for n in nets.findall(o("Network")):
    one(n, o("Description"))
vs = one(root, o("VirtualSystem"))
assert vs.get(a("id"))
info(vs)
os_section = one(vs, o("OperatingSystemSection"))
info(os_section)
assert os_section.get(a("id")).isdigit()
hw = one(vs, o("VirtualHardwareSection"))
info(hw)
items = hw.findall(o("Item"))
assert items
by_type = {}
for item in items:
    for field in ("InstanceID", "ResourceType", "ElementName"):
        assert (one(item, r(field)).text or "").strip(), (field, item)
    by_type.setdefault(item.find(r("ResourceType")).text, []).append(item)
text = lambda item, field: item.find(r(field)).text if item.find(r(field)) is not None else None
cpu, = by_type["3"]
memory, = by_type["4"]
controller, = by_type["6"]
hd, = by_type["17"]
nic, = by_type["10"]
assert text(hd, "Parent") == text(controller, "InstanceID")
assert text(hd, "HostResource") == "ovf:/disk/" + disk.get(a("diskId"))
assert text(nic, "Connection") in networks
configs = {c.get("{%s}key" % VMW): c.get("{%s}value" % VMW) for c in hw.findall("{%s}Config" % VMW)}
print(json.dumps({
    "file": files[0].get(a("href")),
    "file_size": int(files[0].get(a("size"))),
    "capacity": int(disk.get(a("capacity"))),
    "format": disk.get(a("format")),
    "cpus": int(text(cpu, "VirtualQuantity")),
    "memory": int(text(memory, "VirtualQuantity")),
    "memory_units": text(memory, "AllocationUnits"),
    "controller": text(controller, "ResourceSubType"),
    "nic": text(nic, "ResourceSubType"),
    "firmware": configs.get("firmware"),
}))
"#;

/// The OVF of an extracted OVA in `dir`, checked and summed up by [`OVF_CHECK`].
fn ovf_summary(ovf: &Path) -> Value {
    serde_json::from_str(&run_ok("python3", &["-c", OVF_CHECK, s(ovf)])).unwrap()
}

#[test]
fn ova_describes_the_machine_and_carries_the_raw_disk() {
    let (_, raw, source) = raw_build();
    let size = qemu_img::info(raw, Some("raw")).virtual_size;
    let tmp = tempfile::tempdir().unwrap();
    let ova = tmp.path().join("linux.ova");
    let args = ["build", source.as_str(), "--cpus", "3", "--memory", "2G"];
    let mut all = args.to_vec();
    all.extend(["-o", s(&ova)]);
    let summary = ok(&all);
    assert!(
        summary.contains("OVA (OVF 1.0, streamOptimized VMDK)"),
        "{summary}"
    );

    // Descriptor first, manifest second, the disk last; owner 0:0, mode 0644.
    let list = members(&ova, &[]);
    let names: Vec<&str> = list.iter().map(|m| m.3.as_str()).collect();
    assert_eq!(names, ["linux.ovf", "linux.mf", "linux-disk1.vmdk"]);
    for (mode, owner, _, name) in &list {
        assert_eq!(
            (mode.as_str(), owner.as_str()),
            ("-rw-r--r--", "0/0"),
            "{name}"
        );
    }
    run_ok_in(tmp.path(), "tar", &["-xf", "linux.ova"]);
    let vmdk = tmp.path().join("linux-disk1.vmdk");

    let ovf = ovf_summary(&tmp.path().join("linux.ovf"));
    assert_eq!(ovf["file"], "linux-disk1.vmdk");
    assert_eq!(ovf["file_size"], std::fs::metadata(&vmdk).unwrap().len());
    assert_eq!(ovf["capacity"], size);
    assert_eq!(
        ovf["format"],
        "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
    );
    assert_eq!(
        (ovf["cpus"].as_u64(), ovf["memory"].as_u64()),
        (Some(3), Some(2048))
    );
    assert_eq!(ovf["memory_units"], "byte * 2^20");
    assert_eq!(
        (ovf["controller"].as_str(), ovf["nic"].as_str()),
        (Some("lsilogic"), Some("E1000"))
    );
    assert_eq!(
        ovf["firmware"],
        Value::Null,
        "a hybrid disk boots with the BIOS too"
    );

    // The manifest's digests are the files' (sha256sum reads the SHA256(NAME)= HEX form).
    let check = run_ok_in(
        tmp.path(),
        "sha256sum",
        &["--check", "--strict", "linux.mf"],
    );
    assert_eq!(check, "linux.ovf: OK\nlinux-disk1.vmdk: OK\n");

    qemu_img::assert_check(&vmdk, "vmdk");
    let info = qemu_img::info(&vmdk, None);
    assert_eq!((info.format.as_str(), info.virtual_size), ("vmdk", size));
    qemu_img::assert_identical(raw, "raw", &vmdk, "vmdk");

    assert_rebuilt_identical(&ova, &args);

    // A disk that boots only through UEFI asks VMware for EFI firmware.
    let uefi = tmp.path().join("uefi.ova");
    ok(&["build", source, "--firmware", "uefi", "-o", s(&uefi)]);
    let dir = tmp.path().join("uefi");
    std::fs::create_dir(&dir).unwrap();
    run_ok_in(&dir, "tar", &["-xf", s(&uefi), "uefi.ovf"]);
    let ovf = ovf_summary(&dir.join("uefi.ovf"));
    assert_eq!(ovf["firmware"], "efi");
    assert_eq!(
        (ovf["cpus"].as_u64(), ovf["memory"].as_u64()),
        (Some(2), Some(1024)),
        "defaults"
    );
}

#[test]
fn gce_image_is_a_sparse_disk_raw_of_whole_gib() {
    let (_, raw, source) = raw_build();
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("image.tar.gz");
    let args = ["build", source.as_str(), "--json"];
    let mut all = args.to_vec();
    all.extend(["-o", s(&image)]);
    let out = d2l(&all);
    let report = parse_report(&out, "build-report.schema.json");
    let size = qemu_img::info(raw, Some("raw")).virtual_size;
    let whole = size.next_multiple_of(GIB);
    assert_eq!(report["format"], "raw");
    assert_eq!(
        report["bundle"],
        serde_json::json!({"type": "gce", "disk": "disk.raw", "disk_bytes": whole})
    );
    assert_eq!(report["virtual_bytes"], size);

    // One member, disk.raw, its size whole GiB; GNU tar and Python see it sparse.
    let list = members(&image, &["-z"]);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!((list[0].2, list[0].3.as_str()), (whole, "disk.raw"));
    let py = run_ok(
        "python3",
        &[
            "-c",
            "import sys, tarfile; m = tarfile.open(sys.argv[1]).getmembers(); \
             print(len(m), m[0].name, m[0].issparse(), m[0].size)",
            s(&image),
        ],
    );
    assert_eq!(py.trim(), format!("1 disk.raw True {whole}"));
    run_ok_in(tmp.path(), "tar", &["-xSzf", "image.tar.gz"]);
    let disk = tmp.path().join("disk.raw");
    let meta = std::fs::metadata(&disk).unwrap();
    assert_eq!(meta.len(), whole);
    assert_eq!(meta.len() % GIB, 0);
    let raw_allocated = std::fs::metadata(raw).unwrap().blocks() * 512;
    assert!(
        meta.blocks() * 512 <= raw_allocated + (1 << 20),
        "extracted sparse: {} bytes allocated, the raw build {raw_allocated}",
        meta.blocks() * 512
    );
    // The same disk, with zeros up to the whole GiB.
    qemu_img::assert_identical(raw, "raw", &disk, "raw");

    assert_rebuilt_identical(&image, &args);
}

#[test]
fn vagrant_box_for_libvirt_with_the_vagrant_user() {
    let (_, _, source) = raw_build();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let boxfile = dir.join("debian.box");
    let args = ["build", source.as_str()];
    let mut all = args.to_vec();
    all.extend(["-o", s(&boxfile)]);
    let summary = ok(&all);
    assert!(
        summary.contains("Vagrant box (libvirt, qcow2)"),
        "{summary}"
    );
    // The fixture has no sudo: nothing installed, and the user told.
    assert!(
        summary.contains("no sudo in the image: vagrant"),
        "{summary}"
    );

    let list = members(&boxfile, &[]);
    let names: Vec<&str> = list.iter().map(|m| m.3.as_str()).collect();
    assert_eq!(names, ["metadata.json", "Vagrantfile", "box.img"]);
    run_ok_in(dir, "tar", &["-xf", "debian.box"]);

    let img = dir.join("box.img");
    qemu_img::assert_check(&img, "qcow2");
    let size = qemu_img::info(&img, Some("qcow2")).virtual_size;
    let metadata: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(
        metadata,
        serde_json::json!({"provider": "libvirt", "format": "qcow2", "virtual_size": size.div_ceil(GIB)})
    );

    let vagrantfile = std::fs::read_to_string(dir.join("Vagrantfile")).unwrap();
    assert!(
        vagrantfile.contains("libvirt.driver = \"kvm\""),
        "{vagrantfile}"
    );
    assert!(vagrantfile.contains("libvirt.disk_bus = \"virtio\""));
    assert!(vagrantfile.contains("config.ssh.username = 'vagrant'"));
    if d2l_testkit::which("ruby").is_some() {
        let syntax = run_ok_in(dir, "ruby", &["-c", "Vagrantfile"]);
        assert_eq!(syntax.trim(), "Syntax OK");
    } else {
        eprintln!("skipping `ruby -c Vagrantfile`: ruby is not installed (apt-get install ruby)");
    }

    // Inside: user vagrant with Vagrant's insecure public keys.
    let as_raw = dir.join("box-as-raw.img");
    qemu_img::convert(&["-f", "qcow2", "-O", "raw"], &img, &as_raw);
    let table: Value = serde_json::from_str(&run_ok("sfdisk", &["--json", s(&as_raw)])).unwrap();
    let root = table["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["start"]
        .as_u64()
        .unwrap()
        * 512;
    let fs = format!("{}?offset={root}", as_raw.display());
    let keys = run_ok(
        "debugfs",
        &["-R", "cat /home/vagrant/.ssh/authorized_keys", &fs],
    );
    assert!(
        keys.contains(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN1YdxBpNlzxDqfJyw/QKow1F+wvG9hXGoqiysfJOn5Y \
             vagrant insecure public key"
        ),
        "{keys}"
    );
    assert!(keys.starts_with(
        "ssh-rsa AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr+kz4TjGYe7gHzIw"
    ));
    let passwd = run_ok("debugfs", &["-R", "cat /etc/passwd", &fs]);
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("vagrant:x:") && l.ends_with(":/home/vagrant:/bin/bash")),
        "{passwd}"
    );

    // The same disk as a raw build that makes the same user with the same keys.
    let keyfile = dir.join("insecure.pub");
    std::fs::write(&keyfile, &keys).unwrap();
    let reference = dir.join("vagrant.img");
    ok(&[
        "build",
        source,
        "--user",
        "vagrant",
        "--ssh-key",
        s(&keyfile),
        "-o",
        s(&reference),
    ]);
    qemu_img::assert_identical(&reference, "raw", &img, "qcow2");

    assert_rebuilt_identical(&boxfile, &args);
    std::fs::remove_file(as_raw).unwrap();
}

#[test]
fn options_that_do_not_fit_an_archive_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = |name: &str| tmp.path().join(name).display().to_string();
    let cases: [(Vec<String>, &str); 6] = [
        (
            vec![
                "--format".into(),
                "qcow2".into(),
                "-o".into(),
                out("vm.ova"),
            ],
            "--format: ",
        ),
        (
            vec!["--compress".into(), "-o".into(), out("image.tar.gz")],
            "--compress: ",
        ),
        (
            vec![
                "--vmdk-subformat".into(),
                "stream".into(),
                "-o".into(),
                out("vm.ova"),
            ],
            "--vmdk-subformat",
        ),
        (
            vec!["--cpus".into(), "2".into(), "-o".into(), out("linux.qcow2")],
            "--cpus is for .ova outputs",
        ),
        (
            vec![
                "--memory".into(),
                "1000K".into(),
                "-o".into(),
                out("vm.ova"),
            ],
            "not a whole number of MiB",
        ),
        (
            vec![
                "--table".into(),
                "none".into(),
                "-o".into(),
                out("debian.box"),
            ],
            "--table none",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["build", "oci:/nonexistent"];
        args.extend(extra.iter().map(String::as_str));
        let result = d2l(&args);
        assert_eq!(
            result.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&result)
        );
        assert!(
            stderr(&result).contains(needle),
            "{args:?}: {}",
            stderr(&result)
        );
    }
    let result = d2l(&["convert", "in.img", &out("vm.ova")]);
    assert_eq!(result.status.code(), Some(2));
    assert!(
        stderr(&result).contains("d2l convert writes disk images"),
        "{}",
        stderr(&result)
    );
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
        "nothing written"
    );
}
