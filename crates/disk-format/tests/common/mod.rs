//! What the disk-format tests share: the Debian fixture's disk written through any
//! writer, new image files, and conversions with d2l's reader.

#![allow(dead_code)]

use std::fs::File;
use std::path::Path;

use d2l_disk_format::{convert, create, open, ImageWriter, VirtualDisk, WriteOptions};
use d2l_fs_writer::{write_ext4, Ext4Options};
use d2l_partition::{write_partition_table, DiskIds, DiskLayout, TableKind};
use d2l_rootfs::{SpillFile, SpillReader, Tree};

/// The Debian fixture flattened: its tree and file data.
pub fn debian_tree() -> (Tree, SpillReader) {
    let debian = d2l_testkit::debian();
    let image = d2l_registry::open_image(&debian.oci.parse().unwrap(), &Default::default())
        .expect("open the Debian fixture");
    let (tree, spill) = d2l_testkit::apply::image(&image, SpillFile::new().unwrap()).into_parts();
    (tree, spill.into_reader().unwrap())
}

/// Writes the fixture's ext4 at 1 MiB and an MBR into `disk`; returns the disk's size.
pub fn write_debian_disk(disk: &dyn VirtualDisk, tree: &Tree, data: &SpillReader) -> u64 {
    let mut options = Ext4Options::deterministic(&[7; 32]);
    options.offset = d2l_partition::PARTITION_START_BYTES;
    let report = write_ext4(tree, data, disk, &options).expect("write ext4");
    let layout = DiskLayout::plan(TableKind::Mbr, report.size_bytes).unwrap();
    write_partition_table(disk, &layout, &DiskIds::derive(&[7; 32]), None).unwrap();
    layout.disk_bytes
}

/// Creates `path`, empty, for reading and writing.
pub fn new_file(path: &Path) -> File {
    File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .unwrap()
}

/// Creates `path` and a writer over it.
pub fn writer(path: &Path, options: &WriteOptions) -> Box<dyn ImageWriter> {
    let file = new_file(path);
    let mut options = options.clone();
    options.scratch_dir = path.parent().map(Path::to_path_buf);
    create(file, &options).expect("create the writer")
}

/// Converts `input` with d2l into a new image of `options` at `output`.
pub fn d2l_convert(input: &Path, output: &Path, options: &WriteOptions) {
    let reader = open(File::open(input).unwrap())
        .unwrap_or_else(|e| panic!("d2l opens {}: {e}", input.display()));
    let mut options = options.clone();
    options.max_virtual_size = Some(reader.virtual_size());
    let disk = writer(output, &options);
    convert(reader.as_ref(), disk.as_disk())
        .unwrap_or_else(|e| panic!("d2l converts {}: {e}", input.display()));
    disk.finish().expect("finish");
}

/// Opens `path` and reads all its data; the first error.
pub fn read_everything(path: &Path) -> Result<(), String> {
    let reader = open(File::open(path).unwrap()).map_err(|e| e.to_string())?;
    let sink = tempfile::tempfile().unwrap();
    convert(reader.as_ref(), &sink)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Deterministic bytes that compress somewhat, with zero runs.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (i / 4096) % 5 == 3 {
                0
            } else {
                (x % 7) as u8 * 37
            }
        })
        .collect()
}
