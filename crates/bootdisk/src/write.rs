//! Step 2: the filesystem around the placed data, then the boot code and the table.

use d2l_disk::VirtualDisk;
use d2l_fat::{write_fat, FatOptions, FatTree};
use d2l_fs_writer::{write_ext4_placed, Ext4Options, Ext4Report, PlacedData, SizeSpec};
use d2l_partition::{write_partition_table, DiskIds, DiskLayout, TableKind};
use d2l_rootfs::Tree;

use crate::error::{Error, Result};
use crate::plan::{DiskPlan, BLOCK_BYTES, ESP_LABEL, SECTOR_BYTES, SYSLINUX_DIR};

/// What [`write_disk`] made.
pub struct WrittenDisk {
    /// The filesystem.
    pub report: Ext4Report,
    /// The partition layout, when there is a table.
    pub layout: Option<DiskLayout>,
    /// The identifiers written into the table (and the ESP's volume id), when there is one.
    pub ids: Option<DiskIds>,
}

/// Writes the filesystem of `tree` (its file data already placed in `disk`) at the offset
/// `ext4` gives, sized as `plan` says, then the EFI System Partition holding `esp` (what
/// [`prepare_rootfs`](crate::prepare_rootfs) gave), the boot code and the partition table,
/// whose ids derive from `ids_seed`.
pub fn write_disk(
    tree: &Tree,
    data: &PlacedData,
    disk: &dyn VirtualDisk,
    plan: &DiskPlan<'_>,
    esp: Option<&FatTree>,
    mut ext4: Ext4Options,
    ids_seed: &[u8; 32],
) -> Result<WrittenDisk> {
    let timestamp = ext4.timestamp;
    ext4.size = filesystem_size(plan)?;
    let report = write_ext4_placed(tree, data, disk, &ext4).map_err(|e| match (e, plan) {
        // An exact size is the disk's: say what the disk needs.
        (
            d2l_fs_writer::Error::TooSmall { needed, .. },
            DiskPlan {
                table: Some(kind),
                size: SizeSpec::Exact(given),
                ..
            },
        ) => Error::TooSmall {
            needed: DiskLayout::plan_with_esp(*kind, plan.esp_bytes(), needed)
                .map_or(needed, |l| l.disk_bytes),
            given: *given,
        },
        // A bare filesystem's exact size is the user's as given (the writer may have
        // counted whole blocks or groups of it).
        (
            d2l_fs_writer::Error::TooSmall { needed, .. },
            DiskPlan {
                table: None,
                size: SizeSpec::Exact(given),
                ..
            },
        ) => d2l_fs_writer::Error::TooSmall {
            needed,
            given: *given,
        }
        .into(),
        (e, _) => e.into(),
    })?;
    let Some(kind) = plan.table else {
        return Ok(WrittenDisk {
            report,
            layout: None,
            ids: None,
        });
    };
    let layout = DiskLayout::plan_with_esp(kind, plan.esp_bytes(), report.size_bytes)?
        .for_arch(plan.root_arch);
    let ids = DiskIds::derive(ids_seed);
    if let (Some(extent), Some(files)) = (layout.esp, esp) {
        let options = FatOptions {
            volume_id: ids.esp_volume_id,
            label: ESP_LABEL.to_owned(),
            modified: u64::from(timestamp),
        };
        write_fat(disk, extent.start, extent.bytes, files, &options)?;
    }
    let mut boot_code = None;
    if let Some(syslinux) = plan.syslinux {
        let placed = report
            .contiguous_files
            .first()
            .ok_or(Error::LdlinuxNotPlaced)?;
        let sectors = (syslinux.ldlinux_sys().len() as u64).div_ceil(SECTOR_BYTES);
        let first = u64::from(placed.first_block) * (BLOCK_BYTES / SECTOR_BYTES);
        let list: Vec<u64> = (first..first + sectors).collect();
        let patched = syslinux.patched_ldlinux(&list, SYSLINUX_DIR)?;
        let base = layout.partition_start;
        disk.write_at(&patched, base + u64::from(placed.first_block) * BLOCK_BYTES)
            .map_err(Error::Write)?;
        let sector = syslinux.boot_sector(
            first,
            layout.partition_first_lba(),
            layout.partition_sectors(),
        )?;
        disk.write_at(&sector, base).map_err(Error::Write)?;
        boot_code = Some(match kind {
            TableKind::Mbr => syslinux.mbr_bin(),
            TableKind::Gpt => syslinux.gptmbr_bin(),
        });
    }
    write_partition_table(disk, &layout, &ids, boot_code)?;
    Ok(WrittenDisk {
        report,
        layout: Some(layout),
        ids: Some(ids),
    })
}

/// The filesystem's size: with a table, an exact size is the disk's, and the filesystem gets
/// what the table leaves.
fn filesystem_size(plan: &DiskPlan<'_>) -> Result<SizeSpec> {
    match (plan.table, plan.size) {
        (Some(kind), SizeSpec::Exact(bytes)) => {
            let overhead =
                DiskLayout::plan_with_esp(kind, plan.esp_bytes(), 1 << 20)?.disk_bytes - (1 << 20);
            // Less than the table's own room: an empty filesystem, which the writer finds
            // too small, saying what the content needs (mapped to the disk's need above).
            Ok(SizeSpec::Exact(bytes.saturating_sub(overhead)))
        }
        (_, size) => Ok(size),
    }
}
