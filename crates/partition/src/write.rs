//! The write step: puts a planned table into a disk file at fixed offsets.

use d2l_disk::VirtualDisk;

use crate::layout::{DiskLayout, TableKind};
use crate::{gpt, mbr, DiskIds, Error, Result};

/// Writes the partition table for `layout` into `disk` (a raw image is a `File`).
///
/// The file is extended (sparsely) to `layout.disk_bytes` if shorter; a longer file is an
/// error, since a GPT backup header must sit in the last sector. Only table sectors are
/// written (MBR: sector 0; GPT: sectors 0..34 and the last 33), so the filesystem may be
/// written before or after. `boot_code` goes into bytes 0..440 (mbr.bin or gptmbr.bin);
/// `None` leaves zeros there. Signature and table bytes (440..512) always come from here.
pub fn write_partition_table(
    disk: &dyn VirtualDisk,
    layout: &DiskLayout,
    ids: &DiskIds,
    boot_code: Option<&[u8; 440]>,
) -> Result<()> {
    layout.validate()?;
    let len = disk
        .virtual_size()
        .map_err(|source| Error::Io { offset: 0, source })?;
    if len > layout.disk_bytes {
        return Err(Error::DiskFileTooLarge {
            actual: len,
            planned: layout.disk_bytes,
        });
    }
    if len < layout.disk_bytes {
        disk.grow_to(layout.disk_bytes)
            .map_err(|source| Error::Io {
                offset: layout.disk_bytes,
                source,
            })?;
    }
    let sector0 = match layout.kind {
        TableKind::Mbr => mbr::encode(layout, ids, boot_code)?,
        TableKind::Gpt => {
            gpt::write_tables(disk, layout, ids)?;
            gpt::encode_protective_mbr(layout, ids, boot_code)
        }
    };
    disk.write_at(&sector0, 0)
        .map_err(|source| Error::Io { offset: 0, source })?;
    Ok(())
}
