//! The pure planning step: where the partition goes and how big the disk is. No I/O.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// Logical sector size. SYSLINUX and the MBR/GPT LBA fields assume 512-byte sectors
/// (UEFI spec 2.10 §5.3.1: GPT LBAs are in logical blocks; we only emit 512).
pub const SECTOR_BYTES: u64 = 512;

/// Partition alignment and the gap before the first partition: 1 MiB, the convention of
/// fdisk/parted since 2010 (2048 sectors), which also keeps GPT's 34 leading sectors clear.
pub const ALIGN_BYTES: u64 = 1024 * 1024;

/// Byte offset of the first partition: LBA 2048 (the root partition, or the ESP before it).
pub const PARTITION_START_BYTES: u64 = ALIGN_BYTES;

/// Space kept at the end of a GPT disk for the backup entry array (32 sectors) and the
/// backup header (last sector), UEFI spec 2.10 §5.3.2; rounded up to [`ALIGN_BYTES`].
pub const GPT_TAIL_BYTES: u64 = ALIGN_BYTES;

/// First byte an MBR cannot reach: partition start and length are u32 sector counts
/// (UEFI spec 2.10 §5.2.1, Table 5-2), 2^32 * 512 bytes = 2 TiB.
pub const MBR_LIMIT_BYTES: u64 = (1 << 32) * SECTOR_BYTES;

/// Which partition table to write (`--table mbr|gpt`, default `mbr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TableKind {
    /// DOS/MBR table: one primary partition of type 0x83, active flag set.
    #[default]
    Mbr,
    /// GUID partition table behind a protective MBR.
    Gpt,
}

impl FromStr for TableKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mbr" => Ok(TableKind::Mbr),
            "gpt" => Ok(TableKind::Gpt),
            other => Err(Error::UnknownTableKind(other.to_owned())),
        }
    }
}

impl fmt::Display for TableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TableKind::Mbr => "mbr",
            TableKind::Gpt => "gpt",
        })
    }
}

/// The machine a disk's root partition is for: its GPT partition type (Discoverable
/// Partitions Specification), so that systemd and firmware tools recognise it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RootArch {
    /// x86-64: type 4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709.
    #[default]
    X86_64,
    /// 64-bit ARM: type B921B045-1DF0-41C3-AF44-4C6F280D3FAE.
    Aarch64,
}

/// An EFI System Partition: where it is and how long, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspExtent {
    /// Offset of the ESP (1 MiB: it is the first partition).
    pub start: u64,
    /// Length of the ESP (a multiple of 1 MiB).
    pub bytes: u64,
}

/// Where everything goes on the disk, in bytes. Build it with [`DiskLayout::plan`] or
/// [`DiskLayout::plan_with_esp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskLayout {
    /// Table kind.
    pub kind: TableKind,
    /// Total disk size; the disk file must be exactly this long.
    pub disk_bytes: u64,
    /// The EFI System Partition, first on the disk and first in the table, when the disk
    /// boots through UEFI.
    pub esp: Option<EspExtent>,
    /// Offset of the root partition: 1 MiB, or right after the ESP.
    pub partition_start: u64,
    /// Length of the root partition (the filesystem rounded up to 1 MiB).
    pub partition_bytes: u64,
    /// The machine the root partition is for (its GPT type); x86-64 unless set.
    pub root_arch: RootArch,
}

impl DiskLayout {
    /// Plans a disk with one root partition at 1 MiB, holding a filesystem of
    /// `filesystem_bytes`: the partition is the filesystem rounded up to 1 MiB; the disk is
    /// 1 MiB + partition (+ 1 MiB for the GPT backup table).
    ///
    /// Errors if the filesystem is empty or an MBR partition would pass 2 TiB.
    pub fn plan(kind: TableKind, filesystem_bytes: u64) -> Result<DiskLayout> {
        DiskLayout::plan_with_esp(kind, None, filesystem_bytes)
    }

    /// As [`DiskLayout::plan`], with an EFI System Partition of `esp_bytes` (rounded up to
    /// 1 MiB) at 1 MiB when given, the root partition right after it: partition 1 is the
    /// ESP, partition 2 the root, in both tables.
    pub fn plan_with_esp(
        kind: TableKind,
        esp_bytes: Option<u64>,
        filesystem_bytes: u64,
    ) -> Result<DiskLayout> {
        if filesystem_bytes == 0 {
            return Err(Error::EmptyFilesystem);
        }
        let too_big = || Error::TooLargeForMbr {
            end: u64::MAX,
            limit: MBR_LIMIT_BYTES,
        };
        let esp = match esp_bytes {
            None => None,
            Some(0) => return Err(Error::InvalidLayout("the ESP is empty")),
            Some(bytes) => Some(EspExtent {
                start: PARTITION_START_BYTES,
                bytes: bytes
                    .checked_next_multiple_of(ALIGN_BYTES)
                    .ok_or_else(too_big)?,
            }),
        };
        let partition_start = match esp {
            None => PARTITION_START_BYTES,
            Some(esp) => esp.start.checked_add(esp.bytes).ok_or_else(too_big)?,
        };
        let partition_bytes = filesystem_bytes
            .checked_next_multiple_of(ALIGN_BYTES)
            .ok_or_else(too_big)?;
        let partition_end = partition_start
            .checked_add(partition_bytes)
            .ok_or_else(too_big)?;
        let disk_bytes = match kind {
            TableKind::Mbr => {
                if partition_end > MBR_LIMIT_BYTES {
                    return Err(Error::TooLargeForMbr {
                        end: partition_end,
                        limit: MBR_LIMIT_BYTES,
                    });
                }
                partition_end
            }
            TableKind::Gpt => partition_end
                .checked_add(GPT_TAIL_BYTES)
                .ok_or_else(too_big)?,
        };
        Ok(DiskLayout {
            kind,
            disk_bytes,
            esp,
            partition_start,
            partition_bytes,
            root_arch: RootArch::default(),
        })
    }

    /// The same layout with the root partition typed for `arch`.
    pub fn for_arch(self, root_arch: RootArch) -> DiskLayout {
        DiskLayout { root_arch, ..self }
    }

    /// First sector (LBA) of the partition.
    pub fn partition_first_lba(&self) -> u64 {
        self.partition_start / SECTOR_BYTES
    }

    /// Length of the partition in sectors.
    pub fn partition_sectors(&self) -> u64 {
        self.partition_bytes / SECTOR_BYTES
    }

    /// Disk length in sectors.
    pub fn disk_sectors(&self) -> u64 {
        self.disk_bytes / SECTOR_BYTES
    }

    /// Checks the invariants `plan` guarantees, for layouts built by hand.
    pub(crate) fn validate(&self) -> Result<()> {
        let aligned = |v: u64| v.is_multiple_of(SECTOR_BYTES);
        if !(aligned(self.partition_start)
            && aligned(self.partition_bytes)
            && aligned(self.disk_bytes))
        {
            return Err(Error::InvalidLayout(
                "offsets and sizes must be multiples of 512",
            ));
        }
        if self.partition_bytes == 0 {
            return Err(Error::InvalidLayout("partition is empty"));
        }
        // GPT: 34 sectors in front (PMBR, header, 32 of entries), 33 behind.
        let (front, back) = match self.kind {
            TableKind::Mbr => (SECTOR_BYTES, 0),
            TableKind::Gpt => (34 * SECTOR_BYTES, 33 * SECTOR_BYTES),
        };
        let end = self
            .partition_start
            .checked_add(self.partition_bytes)
            .and_then(|e| e.checked_add(back))
            .ok_or(Error::InvalidLayout("partition end overflows"))?;
        if self.partition_start < front || end > self.disk_bytes {
            return Err(Error::InvalidLayout(
                "partition overlaps the table or passes the disk end",
            ));
        }
        if let Some(esp) = self.esp {
            if !(aligned(esp.start) && aligned(esp.bytes)) || esp.bytes == 0 {
                return Err(Error::InvalidLayout(
                    "the ESP must be a non-empty run of whole sectors",
                ));
            }
            if esp.start < front || esp.start.saturating_add(esp.bytes) > self.partition_start {
                return Err(Error::InvalidLayout(
                    "the ESP overlaps the table or the root partition",
                ));
            }
        }
        if self.kind == TableKind::Mbr
            && self.partition_start + self.partition_bytes > MBR_LIMIT_BYTES
        {
            return Err(Error::TooLargeForMbr {
                end: self.partition_start + self.partition_bytes,
                limit: MBR_LIMIT_BYTES,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn mbr_rounds_partition_up_to_mib() {
        let l = DiskLayout::plan(TableKind::Mbr, 10 * MIB + 1).unwrap();
        assert_eq!(l.partition_start, MIB);
        assert_eq!(l.partition_bytes, 11 * MIB);
        assert_eq!(l.disk_bytes, 12 * MIB);
        assert_eq!(l.partition_first_lba(), 2048);
        assert_eq!(l.partition_sectors(), 11 * 2048);
        l.validate().unwrap();
    }

    #[test]
    fn gpt_keeps_a_mib_for_the_backup_table() {
        let l = DiskLayout::plan(TableKind::Gpt, 64 * MIB).unwrap();
        assert_eq!(l.partition_bytes, 64 * MIB);
        assert_eq!(l.disk_bytes, 66 * MIB);
        l.validate().unwrap();
    }

    #[test]
    fn an_esp_goes_first_and_the_root_after_it() {
        for kind in [TableKind::Mbr, TableKind::Gpt] {
            let l = DiskLayout::plan_with_esp(kind, Some(64 * MIB - 5), 10 * MIB).unwrap();
            assert_eq!(
                l.esp,
                Some(EspExtent {
                    start: MIB,
                    bytes: 64 * MIB
                })
            );
            assert_eq!(l.partition_start, 65 * MIB);
            assert_eq!(l.partition_bytes, 10 * MIB);
            let tail = if kind == TableKind::Gpt { MIB } else { 0 };
            assert_eq!(l.disk_bytes, 75 * MIB + tail);
            l.validate().unwrap();
        }
        assert!(DiskLayout::plan_with_esp(TableKind::Mbr, Some(0), MIB).is_err());
        let mut overlapping = DiskLayout::plan_with_esp(TableKind::Gpt, Some(MIB), MIB).unwrap();
        overlapping.partition_start = MIB;
        assert!(overlapping.validate().is_err());
    }

    #[test]
    fn exact_mib_is_not_padded() {
        let l = DiskLayout::plan(TableKind::Mbr, MIB).unwrap();
        assert_eq!(l.partition_bytes, MIB);
    }

    #[test]
    fn empty_filesystem_is_refused() {
        assert!(matches!(
            DiskLayout::plan(TableKind::Gpt, 0),
            Err(Error::EmptyFilesystem)
        ));
    }

    #[test]
    fn mbr_stops_at_two_tib() {
        // Largest that fits: partition ends exactly at 2 TiB.
        let fits = MBR_LIMIT_BYTES - MIB;
        let l = DiskLayout::plan(TableKind::Mbr, fits).unwrap();
        assert_eq!(l.disk_bytes, MBR_LIMIT_BYTES);
        assert!(matches!(
            DiskLayout::plan(TableKind::Mbr, fits + 1),
            Err(Error::TooLargeForMbr { end, .. }) if end == MBR_LIMIT_BYTES + MIB
        ));
        // GPT has no such limit.
        DiskLayout::plan(TableKind::Gpt, fits + 1).unwrap();
    }

    #[test]
    fn huge_sizes_do_not_overflow() {
        assert!(DiskLayout::plan(TableKind::Gpt, u64::MAX).is_err());
        assert!(DiskLayout::plan(TableKind::Mbr, u64::MAX - 5).is_err());
    }

    #[test]
    fn table_kind_parses_and_prints() {
        assert_eq!("mbr".parse::<TableKind>().unwrap(), TableKind::Mbr);
        assert_eq!("gpt".parse::<TableKind>().unwrap(), TableKind::Gpt);
        assert!("GPT ".parse::<TableKind>().is_err());
        assert_eq!(TableKind::default(), TableKind::Mbr);
        assert_eq!(TableKind::Gpt.to_string(), "gpt");
    }

    #[test]
    fn validate_rejects_overlap() {
        let mut l = DiskLayout::plan(TableKind::Gpt, MIB).unwrap();
        l.partition_start = 33 * SECTOR_BYTES;
        assert!(l.validate().is_err());
        let mut l = DiskLayout::plan(TableKind::Gpt, MIB).unwrap();
        l.disk_bytes -= SECTOR_BYTES;
        l.disk_bytes -= ALIGN_BYTES;
        assert!(l.validate().is_err());
    }
}
