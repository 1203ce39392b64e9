//! GPT: protective MBR, primary header and entry array, backup array and header at the end.
//! Headers, entries and CRC32s by the `gpt` crate; the protective MBR we encode with its
//! `ProtectiveMBR` type and write ourselves, so the boot code and signature go in one write.
//!
//! The gpt crate's `add_partition*` pick a random partition GUID, so we hand it a complete
//! [`gpt::partition::Partition`] through `update_partitions` instead: fully deterministic.
//! It writes the whole 16 KiB entry arrays (zeros included) twice; that is the table itself,
//! and it must overwrite whatever was there.

use std::collections::BTreeMap;

use d2l_disk::VirtualDisk;

use crate::layout::{DiskLayout, RootArch, SECTOR_BYTES};
use crate::{DiskIds, Result};
use d2l_disk::DiskCursor;

/// Name of the root partition in its GPT entry (UTF-16LE, up to 36 units).
pub const PARTITION_NAME: &str = "d2l-root";

/// Name of the EFI System Partition in its GPT entry.
pub const ESP_NAME: &str = "d2l-esp";

/// Entry attribute bit 2, "Legacy BIOS bootable" (UEFI spec 2.10 §5.3.3, Table 5-8):
/// gptmbr.bin boots the partition that has it.
pub const ATTR_LEGACY_BIOS_BOOTABLE: u64 = 1 << 2;

/// The GPT type of the root partition for `arch` (Discoverable Partitions Specification).
pub(crate) fn root_type(arch: RootArch) -> gpt::partition_types::Type {
    match arch {
        RootArch::X86_64 => gpt::partition_types::LINUX_ROOT_X64,
        RootArch::Aarch64 => gpt::partition_types::LINUX_ROOT_ARM_64,
    }
}

/// Writes the GPT structures (everything but LBA 0) with the gpt crate.
pub(crate) fn write_tables(
    disk: &dyn VirtualDisk,
    layout: &DiskLayout,
    ids: &DiskIds,
) -> Result<()> {
    let mut disk = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .create_from_device(
            DiskCursor::new(disk),
            Some(uuid::Uuid::from_bytes(ids.disk_guid)),
        )?;
    let first_lba = layout.partition_first_lba();
    let partition = gpt::partition::Partition {
        part_type_guid: root_type(layout.root_arch),
        part_guid: uuid::Uuid::from_bytes(ids.partition_guid),
        first_lba,
        // Inclusive (UEFI spec 2.10 §5.3.3, EndingLBA).
        last_lba: first_lba + layout.partition_sectors() - 1,
        flags: ATTR_LEGACY_BIOS_BOOTABLE,
        name: PARTITION_NAME.to_owned(),
    };
    let mut partitions = BTreeMap::new();
    match layout.esp {
        None => {
            partitions.insert(1, partition);
        }
        Some(esp) => {
            let first_lba = esp.start / SECTOR_BYTES;
            let esp = gpt::partition::Partition {
                part_type_guid: gpt::partition_types::EFI,
                part_guid: uuid::Uuid::from_bytes(ids.esp_guid),
                first_lba,
                last_lba: first_lba + esp.bytes / SECTOR_BYTES - 1,
                flags: 0,
                name: ESP_NAME.to_owned(),
            };
            partitions.insert(1, esp);
            partitions.insert(2, partition);
        }
    }
    disk.update_partitions(partitions)?;
    disk.write_inplace()?;
    Ok(())
}

/// Encodes the protective MBR (UEFI spec 2.10 §5.2.3): boot code (or zeros), disk
/// signature, one 0xEE partition from LBA 1 over the whole disk (capped at 0xFFFFFFFF).
pub(crate) fn encode_protective_mbr(
    layout: &DiskLayout,
    ids: &DiskIds,
    boot_code: Option<&[u8; 440]>,
) -> [u8; SECTOR_BYTES as usize] {
    let size = u32::try_from(layout.disk_sectors() - 1).unwrap_or(u32::MAX);
    let mut pmbr = gpt::mbr::ProtectiveMBR::with_lb_size(size);
    if let Some(code) = boot_code {
        pmbr.set_bootcode(*code);
    }
    pmbr.set_disk_signature(ids.mbr_signature.to_le_bytes());
    pmbr.to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TableKind;

    #[test]
    fn protective_mbr_field_by_field() {
        let layout = DiskLayout::plan(TableKind::Gpt, 1).unwrap(); // 3 MiB = 6144 sectors
        let ids = DiskIds {
            mbr_signature: 0xdead_beef,
            disk_guid: [0; 16],
            partition_guid: [0; 16],
            esp_guid: [0; 16],
            esp_volume_id: 1,
        };
        let s = encode_protective_mbr(&layout, &ids, Some(&[0x11; 440]));
        assert_eq!(&s[..440], &[0x11; 440][..]);
        assert_eq!(&s[440..444], &[0xef, 0xbe, 0xad, 0xde]);
        let e = &s[446..462];
        assert_eq!(e[0], 0, "protective entry is not active");
        assert_eq!(e[4], 0xee, "type GPT protective");
        assert_eq!(&e[8..12], &1u32.to_le_bytes(), "starts at LBA 1");
        assert_eq!(
            &e[12..16],
            &6143u32.to_le_bytes(),
            "covers the rest of the disk"
        );
        assert_eq!(&s[462..510], &[0; 48][..]);
        assert_eq!(&s[510..], &[0x55, 0xaa]);
    }
}
