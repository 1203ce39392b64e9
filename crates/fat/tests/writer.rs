//! What `write_fat` refuses, that it writes the same bytes for the same input, and that
//! `FatVolume` turns damaged volumes into errors (not panics or hangs). No outside tools:
//! tests/real_tools.rs judges the volumes themselves.

use std::os::unix::fs::FileExt;

use d2l_fat::{write_fat, Error, FatOptions, FatTree, FatVolume, MIN_VOLUME_BYTES};

const MIB: u64 = 1 << 20;

fn options() -> FatOptions {
    FatOptions {
        volume_id: 0x0102_0304,
        label: "ESP".into(),
        modified: 1_700_000_000,
    }
}

fn tree() -> FatTree {
    let mut tree = FatTree::new();
    tree.add_file("EFI/BOOT/BOOTX64.EFI", vec![0x4D; 70_000])
        .unwrap();
    tree.add_file("EFI/BOOT/grub.cfg", b"set timeout=0\n".to_vec())
        .unwrap();
    tree.add_file("EFI/Linux/a long name.efi", vec![7; 1000])
        .unwrap();
    tree.add_file("EFI/Linux/a long name 2.efi", vec![8; 10])
        .unwrap();
    tree
}

fn write(size: u64, tree: &FatTree, options: &FatOptions) -> Vec<u8> {
    let disk = tempfile::tempfile().unwrap();
    write_fat(&disk, 0, size, tree, options).unwrap();
    let mut bytes = vec![0; size as usize];
    disk.read_exact_at(&mut bytes, 0).unwrap();
    bytes
}

#[test]
fn the_same_tree_and_options_give_the_same_bytes() {
    for size in [16 * MIB, 64 * MIB] {
        let first = write(size, &tree(), &options());
        assert!(first == write(size, &tree(), &options()), "{size}");
        let other_id = FatOptions {
            volume_id: 0x0102_0305,
            ..options()
        };
        assert!(first != write(size, &tree(), &other_id), "{size}");
        let other_time = FatOptions {
            modified: 1_700_000_002,
            ..options()
        };
        assert!(first != write(size, &tree(), &other_time), "{size}");
    }
}

#[test]
fn our_volumes_read_back() {
    let disk = tempfile::tempfile().unwrap();
    let offset = 3 * MIB;
    write_fat(&disk, offset, 64 * MIB, &tree(), &options()).unwrap();
    let volume = FatVolume::open(&disk, offset).unwrap();
    assert_eq!(volume.volume_id(), 0x0102_0304);
    assert_eq!(volume.label().unwrap().as_deref(), Some("ESP"));
    let linux = volume.read_dir("EFI/Linux").unwrap();
    let names: Vec<(&str, &str)> = linux
        .iter()
        .map(|e| (e.name.as_str(), e.short_name.as_str()))
        .collect();
    // Sorted by name; both long names share a basis, so the tails count up.
    assert_eq!(
        names,
        [
            ("a long name 2.efi", "ALONGN~1.EFI"),
            ("a long name.efi", "ALONGN~2.EFI")
        ]
    );
    assert_eq!(
        volume.read_file("efi/linux/ALONGN~2.EFI").unwrap(),
        vec![7; 1000]
    );
    assert_eq!(
        volume.read_file("EFI/BOOT/BOOTX64.EFI").unwrap(),
        vec![0x4D; 70_000]
    );
}

#[test]
fn generated_short_names_avoid_the_names_already_there() {
    // "ALONGN~1.EFI" is an upper-case 8.3 name and keeps it; the long name whose basis is
    // the same takes the next tail, and a lower-case 8.3 name keeps its own letters.
    let mut tree = FatTree::new();
    tree.add_file("ALONGN~1.EFI", vec![1]).unwrap();
    tree.add_file("a long name.efi", vec![2]).unwrap();
    tree.add_file("alongn~3.efi", vec![3]).unwrap();
    tree.add_file("a long name too.efi", vec![4]).unwrap();
    let disk = tempfile::tempfile().unwrap();
    write_fat(&disk, 0, 64 * MIB, &tree, &options()).unwrap();
    let volume = FatVolume::open(&disk, 0).unwrap();
    let names: Vec<(String, String)> = volume
        .read_dir("")
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.short_name))
        .collect();
    let expected = [
        ("ALONGN~1.EFI", "ALONGN~1.EFI"),
        ("a long name too.efi", "ALONGN~2.EFI"),
        ("a long name.efi", "ALONGN~4.EFI"),
        ("alongn~3.efi", "ALONGN~3.EFI"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(names, expected);
    assert_eq!(volume.read_file("ALONGN~4.EFI").unwrap(), [2]);
}

#[test]
fn a_volume_below_the_minimum_is_refused_with_the_minimum() {
    let disk = tempfile::tempfile().unwrap();
    let err = write_fat(&disk, 0, MIN_VOLUME_BYTES - 512, &tree(), &options()).unwrap_err();
    assert!(matches!(
        err,
        Error::VolumeTooSmall {
            minimum: MIN_VOLUME_BYTES,
            ..
        }
    ));
    assert!(
        err.to_string().contains(&MIN_VOLUME_BYTES.to_string()),
        "{err}"
    );
    assert_eq!(disk.metadata().unwrap().len(), 0, "nothing written");
}

#[test]
fn a_tree_larger_than_the_volume_is_refused_with_both_sizes() {
    let disk = tempfile::tempfile().unwrap();
    let mut big = tree();
    big.add_file("EFI/big.img", vec![1; 3 * MIB as usize])
        .unwrap();
    let err = write_fat(&disk, 0, MIN_VOLUME_BYTES, &big, &options()).unwrap_err();
    let Error::TreeTooLarge { needed, available } = err else {
        panic!("{err}")
    };
    assert_eq!(available, 4085 * 512);
    assert!(needed > 3 * MIB, "{needed}");
    assert_eq!(disk.metadata().unwrap().len(), 0, "nothing written");
}

#[test]
fn a_full_fat16_root_is_refused() {
    // 512 root entries: the label and 511 upper-case 8.3 names fit, one more does not.
    let mut tree = FatTree::new();
    for i in 0..511 {
        tree.add_file(&format!("F{i}.TXT"), vec![]).unwrap();
    }
    let disk = tempfile::tempfile().unwrap();
    write_fat(&disk, 0, 16 * MIB, &tree, &options()).unwrap();
    tree.add_file("LAST.TXT", vec![]).unwrap();
    let err = write_fat(&disk, 0, 16 * MIB, &tree, &options()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::DirectoryTooLarge {
                entries: 513,
                max: 512,
                ..
            }
        ),
        "{err}"
    );
    // FAT32's root grows in clusters.
    write_fat(&disk, 0, 64 * MIB, &tree, &options()).unwrap();
}

#[test]
fn bad_names_duplicates_and_labels_are_refused() {
    let mut tree = tree();
    for (path, reason) in [
        ("EFI/BOOT/GRUB.CFG", "already holds \"grub.cfg\""),
        ("efi/x", "already holds \"EFI\""),
        ("EFI/BOOT/grub.cfg/x", "is a file"),
        ("EFI/a:b", "cannot appear"),
        ("EFI/..", "is not a name"),
        ("EFI/trailing.", "ends with a dot"),
        ("EFI//x", "empty path component"),
    ] {
        let err = tree.add_file(path, vec![]).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(path) && message.contains(reason),
            "{message}"
        );
    }
    let long = format!("EFI/{}", "n".repeat(256));
    assert!(matches!(
        tree.add_dir(&long),
        Err(Error::InvalidName { .. })
    ));
    let disk = tempfile::tempfile().unwrap();
    for label in ["esp", "TWELVE CHARS", " ESP", "E.SP", "ÉSP"] {
        let options = FatOptions {
            label: label.into(),
            ..options()
        };
        let err = write_fat(&disk, 0, 16 * MIB, &tree, &options).unwrap_err();
        assert!(matches!(err, Error::InvalidLabel { .. }), "{label}: {err}");
    }
    let err = write_fat(&disk, 100, 16 * MIB, &tree, &options()).unwrap_err();
    assert!(matches!(err, Error::BadOffset { offset: 100 }), "{err}");
    // No label at all is fine: the boot sector says NO NAME and the root has no entry.
    let unlabelled = FatOptions {
        label: String::new(),
        ..options()
    };
    write_fat(&disk, 0, 16 * MIB, &tree, &unlabelled).unwrap();
    assert_eq!(FatVolume::open(&disk, 0).unwrap().label().unwrap(), None);
}

/// A written volume and where its first FAT and the entries of one file are.
struct Damaged {
    disk: std::fs::File,
    fat: u64,
    entry_bytes: u64,
    file_cluster: u32,
    dir_cluster: u32,
    clusters: u32,
}

fn damaged(size: u64) -> Damaged {
    let disk = tempfile::tempfile().unwrap();
    write_fat(&disk, 0, size, &tree(), &options()).unwrap();
    let volume = FatVolume::open(&disk, 0).unwrap();
    let file = &volume.read_dir("EFI/BOOT").unwrap()[0];
    assert_eq!(file.name, "BOOTX64.EFI");
    let dir = &volume.read_dir("EFI").unwrap()[0];
    let entry_bytes = match volume.kind() {
        d2l_fat::FatKind::Fat16 => 2,
        d2l_fat::FatKind::Fat32 => 4,
    };
    let (file_cluster, dir_cluster) = (file.first_cluster, dir.first_cluster);
    let clusters = volume.clusters();
    let mut reserved = [0u8; 2];
    // BPB_RsvdSecCnt: boot sector offset 14.
    disk.read_exact_at(&mut reserved, 14).unwrap();
    let fat = u64::from(u16::from_le_bytes(reserved)) * 512;
    Damaged {
        disk,
        fat,
        entry_bytes,
        file_cluster,
        dir_cluster,
        clusters,
    }
}

impl Damaged {
    fn set_entry(&self, cluster: u32, value: u32) {
        let bytes = value.to_le_bytes();
        let at = self.fat + u64::from(cluster) * self.entry_bytes;
        self.disk
            .write_all_at(&bytes[..self.entry_bytes as usize], at)
            .unwrap();
    }

    fn corrupt_reason(&self, read: impl Fn(&FatVolume) -> d2l_fat::Result<()>) -> String {
        let volume = FatVolume::open(&self.disk, 0).unwrap();
        match read(&volume) {
            Err(Error::Corrupt { reason, .. }) => reason,
            other => panic!("expected a corrupt volume, got {other:?}"),
        }
    }
}

fn read_boot(volume: &FatVolume) -> d2l_fat::Result<()> {
    volume.read_file("EFI/BOOT/BOOTX64.EFI").map(drop)
}

#[test]
fn hostile_fat_chains_are_errors() {
    for size in [16 * MIB, 64 * MIB] {
        let d = damaged(size);
        read_boot(&FatVolume::open(&d.disk, 0).unwrap()).unwrap();
        // The file's second cluster links back to its first.
        d.set_entry(d.file_cluster + 1, d.file_cluster);
        assert!(d.corrupt_reason(read_boot).contains("loops"), "{size}");
        // A link past the last cluster.
        d.set_entry(d.file_cluster + 1, d.clusters + 10);
        let reason = d.corrupt_reason(read_boot);
        assert!(reason.contains("outside"), "{size}: {reason}");
        // A link to a free cluster.
        d.set_entry(d.file_cluster + 1, 0);
        assert!(
            d.corrupt_reason(read_boot).contains("links to 0x0"),
            "{size}"
        );
        // The chain ends before the file does.
        d.set_entry(d.file_cluster + 1, 0x0FFF_FFFF);
        assert!(d.corrupt_reason(read_boot).contains("not the"), "{size}");
        // EFI/BOOT, whose only cluster links to itself: an error, not an endless read.
        d.set_entry(d.dir_cluster, d.dir_cluster);
        let reason = d.corrupt_reason(|v| v.read_dir("EFI/BOOT").map(drop));
        assert!(reason.contains("loops"), "{size}: {reason}");
    }
}

#[test]
fn hostile_entries_and_boot_sectors_are_errors() {
    let d = damaged(64 * MIB);
    // The file's first cluster, in its directory entry, past the volume: find the entry by
    // its short name on the disk and patch DIR_FstClusHI (offset 20) and DIR_FstClusLO (26).
    let image_len = d.disk.metadata().unwrap().len();
    let mut image = vec![0u8; image_len as usize];
    d.disk.read_exact_at(&mut image, 0).unwrap();
    let at = image
        .windows(11)
        .position(|w| w == b"BOOTX64 EFI")
        .expect("the entry is on the disk") as u64;
    d.disk
        .write_all_at(&0xFFF0u16.to_le_bytes(), at + 26)
        .unwrap();
    d.disk
        .write_all_at(&0x0FFFu16.to_le_bytes(), at + 20)
        .unwrap();
    assert!(d.corrupt_reason(read_boot).contains("outside"));

    // Boot sectors: no signature, a cluster size that is not a power of two, a root
    // cluster outside the volume, more FAT sectors than the volume.
    for (offset, bytes, reason) in [
        (510, vec![0, 0], "signature"),
        (13, vec![3], "sectors per cluster"),
        (
            44,
            0x00FF_FFFF_u32.to_le_bytes().to_vec(),
            "root at cluster",
        ),
        (36, 0x0FFF_FFFF_u32.to_le_bytes().to_vec(), "no data area"),
    ] {
        let d = damaged(64 * MIB);
        d.disk.write_all_at(&bytes, offset).unwrap();
        match FatVolume::open(&d.disk, 0) {
            Err(Error::Corrupt { reason: r, .. }) => assert!(r.contains(reason), "{r}"),
            other => panic!("{reason}: {other:?}"),
        }
    }
}
