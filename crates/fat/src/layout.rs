//! The volume's geometry, planned from its size alone (pure, no I/O), and read back from a
//! boot sector by the reader.
//!
//! FAT type and cluster size follow Microsoft's tables (fatgen103, "FAT Volume
//! Initialization", `DskTableFAT16` and `DskTableFAT32`), which mkfs.fat also follows, with
//! two choices of d2l's:
//! - FAT32 from [`FAT32_MIN_VOLUME_BYTES`] (64 MiB) up. The UEFI specification asks for FAT32
//!   on a system partition; firmware reads FAT12/16/32 alike. 64 MiB at 512-byte clusters
//!   is about 130000 clusters, twice the 65525 that make a FAT32 volume, so no driver that
//!   counts clusters a little differently can take it for FAT16.
//! - FAT16 below, down to [`MIN_VOLUME_BYTES`]: 4085 clusters of 512 bytes. Microsoft's table
//!   makes volumes under 4.1 MiB FAT12; d2l writes no FAT12 and uses 512-byte clusters there.
//!
//! (The table of sizes is in the crate documentation.)
//!
//! Reserved sectors: 1 on FAT16 (the boot sector), 32 on FAT32 (boot sector, FSInfo at 1,
//! their backups at 6 and 7), as fatgen103 and mkfs.fat. Two FATs, each exactly as many
//! sectors as the clusters left beside them need. FAT16's root directory has 512 entries.

use crate::ondisk::{MAX_FAT32_CLUSTERS, MIN_FAT16_CLUSTERS, MIN_FAT32_CLUSTERS, SECTOR_BYTES};
use crate::{Error, Result};

/// Which FAT a volume is: decided by its number of clusters, never by a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatKind {
    /// 16-bit FAT entries, 4085 to 65524 clusters, a fixed root directory.
    Fat16,
    /// 28-bit FAT entries, 65525 clusters or more, root directory in clusters, FSInfo.
    Fat32,
}

/// Number of FATs: two, as every formatter writes and some firmware expects.
pub(crate) const NUM_FATS: u32 = 2;
/// Reserved sectors of a FAT16 volume: the boot sector.
pub(crate) const FAT16_RESERVED_SECTORS: u32 = 1;
/// Reserved sectors of a FAT32 volume (fatgen103: "typically 32").
pub(crate) const FAT32_RESERVED_SECTORS: u32 = 32;
/// Sector of the FSInfo structure on FAT32.
pub(crate) const FSINFO_SECTOR: u32 = 1;
/// Sector of the backup boot sector on FAT32 (fatgen103: "no value other than 6").
pub(crate) const BACKUP_BOOT_SECTOR: u32 = 6;
/// Entries of FAT16's fixed root directory (fatgen103: 512 for maximum compatibility).
pub(crate) const FAT16_ROOT_ENTRIES: u32 = 512;
/// Sectors of that root directory.
const FAT16_ROOT_SECTORS: u32 = FAT16_ROOT_ENTRIES * 32 / SECTOR_BYTES;
/// The volume size from which d2l writes FAT32 rather than FAT16.
pub const FAT32_MIN_VOLUME_BYTES: u64 = 64 << 20;
/// Smallest volume `write_fat` accepts: FAT16 with 4085 clusters of one sector, its
/// boot sector, root directory and two FATs of 4087 two-byte entries (16 sectors each).
pub const MIN_VOLUME_BYTES: u64 = (FAT16_RESERVED_SECTORS
    + FAT16_ROOT_SECTORS
    + NUM_FATS * (MIN_FAT16_CLUSTERS + 2).div_ceil(SECTOR_BYTES / 2)
    + MIN_FAT16_CLUSTERS) as u64
    * SECTOR_BYTES as u64;
/// Largest volume `write_fat` accepts: the boot sector counts sectors in 32 bits.
pub const MAX_VOLUME_BYTES: u64 = u32::MAX as u64 * SECTOR_BYTES as u64;

/// Sectors per cluster by total sectors: `(up to this many sectors, sectors per cluster)`.
const FAT16_CLUSTER_TABLE: &[(u32, u32)] = &[(8400, 1), (32680, 2), (u32::MAX, 4)];
/// See [`FAT16_CLUSTER_TABLE`]; fatgen103's `DskTableFAT32`.
const FAT32_CLUSTER_TABLE: &[(u32, u32)] = &[
    (532_480, 1),
    (16_777_216, 8),
    (33_554_432, 16),
    (67_108_864, 32),
    (u32::MAX, 64),
];

/// Where everything of a volume is, in sectors from its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub kind: FatKind,
    pub sector_bytes: u32,
    pub total_sectors: u32,
    pub reserved_sectors: u32,
    pub num_fats: u32,
    /// Sectors of one FAT.
    pub fat_sectors: u32,
    /// Sectors of FAT16's fixed root directory; 0 on FAT32.
    pub root_dir_sectors: u32,
    pub sectors_per_cluster: u32,
    /// Data clusters, numbered from 2.
    pub clusters: u32,
}

impl Geometry {
    /// The geometry d2l writes for a volume of `size` bytes (whole sectors; a partial last
    /// sector is left out).
    pub fn plan(size: u64) -> Result<Self> {
        if size < MIN_VOLUME_BYTES {
            return Err(Error::VolumeTooSmall {
                size,
                minimum: MIN_VOLUME_BYTES,
            });
        }
        let total_sectors =
            u32::try_from(size / u64::from(SECTOR_BYTES)).map_err(|_| Error::VolumeTooLarge {
                size,
                maximum: MAX_VOLUME_BYTES,
            })?;
        let (kind, table, reserved_sectors, root_dir_sectors) = if size < FAT32_MIN_VOLUME_BYTES {
            let table = FAT16_CLUSTER_TABLE;
            (
                FatKind::Fat16,
                table,
                FAT16_RESERVED_SECTORS,
                FAT16_ROOT_SECTORS,
            )
        } else {
            (
                FatKind::Fat32,
                FAT32_CLUSTER_TABLE,
                FAT32_RESERVED_SECTORS,
                0,
            )
        };
        let sectors_per_cluster = table
            .iter()
            .find(|(up_to, _)| total_sectors <= *up_to)
            .map_or(1, |(_, spc)| *spc);
        let mut geometry = Geometry {
            kind,
            sector_bytes: SECTOR_BYTES,
            total_sectors,
            reserved_sectors,
            num_fats: NUM_FATS,
            fat_sectors: 0,
            root_dir_sectors,
            sectors_per_cluster,
            clusters: 0,
        };
        // The FAT's size and the clusters beside it depend on each other: start from a FAT
        // for every cluster the volume could have without FATs (big enough), then shrink it
        // while the clusters it leaves still fit in it.
        let fits = |g: &Geometry, fat_sectors: u32| {
            let clusters = g.clusters_with(fat_sectors);
            g.fat_sectors_for(clusters) <= u64::from(fat_sectors)
        };
        let mut fat_sectors = u32::try_from(geometry.fat_sectors_for(geometry.clusters_with(0)))
            .expect("a FAT is smaller than the volume");
        while fat_sectors > 1 && fits(&geometry, fat_sectors - 1) {
            fat_sectors -= 1;
        }
        geometry.fat_sectors = fat_sectors;
        geometry.clusters = geometry.clusters_with(fat_sectors);
        // The tables keep every size inside its type's cluster range; checked, not assumed.
        let (low, high) = match kind {
            FatKind::Fat16 => (MIN_FAT16_CLUSTERS, MIN_FAT32_CLUSTERS - 1),
            FatKind::Fat32 => (MIN_FAT32_CLUSTERS, MAX_FAT32_CLUSTERS),
        };
        assert!(
            (low..=high).contains(&geometry.clusters),
            "{size} bytes planned as {kind:?} with {} clusters",
            geometry.clusters
        );
        Ok(geometry)
    }

    /// Data clusters left when each FAT takes `fat_sectors`.
    fn clusters_with(&self, fat_sectors: u32) -> u32 {
        let metadata = u64::from(self.reserved_sectors)
            + u64::from(self.num_fats) * u64::from(fat_sectors)
            + u64::from(self.root_dir_sectors);
        let data = u64::from(self.total_sectors).saturating_sub(metadata);
        u32::try_from(data / u64::from(self.sectors_per_cluster))
            .expect("clusters are fewer than sectors")
    }

    /// Sectors of a FAT with entries for `clusters` (and the two reserved entries).
    fn fat_sectors_for(&self, clusters: u32) -> u64 {
        (u64::from(clusters) + 2)
            .saturating_mul(self.fat_entry_bytes())
            .div_ceil(u64::from(self.sector_bytes))
    }

    /// Bytes of one FAT entry.
    pub fn fat_entry_bytes(&self) -> u64 {
        match self.kind {
            FatKind::Fat16 => 2,
            FatKind::Fat32 => 4,
        }
    }

    /// Bytes of one cluster.
    pub fn cluster_bytes(&self) -> u32 {
        self.sector_bytes * self.sectors_per_cluster
    }

    /// Byte offset of the first FAT, from the start of the volume.
    pub fn fat_offset(&self, fat: u32) -> u64 {
        (u64::from(self.reserved_sectors) + u64::from(fat) * u64::from(self.fat_sectors))
            * u64::from(self.sector_bytes)
    }

    /// Bytes of one FAT.
    pub fn fat_bytes(&self) -> u64 {
        u64::from(self.fat_sectors) * u64::from(self.sector_bytes)
    }

    /// Byte offset of FAT16's fixed root directory (the first data cluster on FAT32).
    pub fn root_dir_offset(&self) -> u64 {
        self.fat_offset(self.num_fats)
    }

    /// Bytes of FAT16's fixed root directory.
    pub fn root_dir_bytes(&self) -> u64 {
        u64::from(self.root_dir_sectors) * u64::from(self.sector_bytes)
    }

    /// Byte offset of a data cluster (2 and up) from the start of the volume.
    pub fn cluster_offset(&self, cluster: u32) -> u64 {
        self.root_dir_offset()
            + self.root_dir_bytes()
            + u64::from(cluster - crate::ondisk::FIRST_CLUSTER) * u64::from(self.cluster_bytes())
    }

    /// Bytes the volume covers.
    pub fn volume_bytes(&self) -> u64 {
        u64::from(self.total_sectors) * u64::from(self.sector_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_minimum_is_4085_clusters_of_one_sector() {
        let g = Geometry::plan(MIN_VOLUME_BYTES).unwrap();
        assert_eq!(MIN_VOLUME_BYTES, 4150 * 512);
        assert_eq!(g.kind, FatKind::Fat16);
        assert_eq!(
            (g.clusters, g.fat_sectors, g.cluster_bytes()),
            (4085, 16, 512)
        );
        assert!(matches!(
            Geometry::plan(MIN_VOLUME_BYTES - 1),
            Err(Error::VolumeTooSmall {
                minimum: MIN_VOLUME_BYTES,
                ..
            })
        ));
    }

    #[test]
    fn type_and_cluster_size_follow_the_table() {
        let cases = [
            (MIN_VOLUME_BYTES, FatKind::Fat16, 512),
            (4 * MIB, FatKind::Fat16, 512),
            (5 * MIB, FatKind::Fat16, 1024),
            (16 * MIB, FatKind::Fat16, 2048),
            (FAT32_MIN_VOLUME_BYTES - 512, FatKind::Fat16, 2048),
            (FAT32_MIN_VOLUME_BYTES, FatKind::Fat32, 512),
            (260 * MIB, FatKind::Fat32, 512),
            (260 * MIB + 512, FatKind::Fat32, 4096),
            (8 << 30, FatKind::Fat32, 4096),
            (MAX_VOLUME_BYTES, FatKind::Fat32, 32768),
        ];
        for (size, kind, cluster) in cases {
            let g = Geometry::plan(size).unwrap();
            assert_eq!((g.kind, g.cluster_bytes()), (kind, cluster), "{size}");
        }
        assert!(matches!(
            Geometry::plan(MAX_VOLUME_BYTES + 512),
            Err(Error::VolumeTooLarge { .. })
        ));
    }

    #[test]
    fn every_size_gets_the_smallest_fat_that_holds_its_clusters() {
        // Every size across each boundary of the table, and a sweep in between: the FAT
        // holds all clusters, one sector less would not, the type matches the count.
        let mut sizes: Vec<u64> = (0..2000).map(|i| MIN_VOLUME_BYTES + i * 512).collect();
        for boundary in [8400u64, 32680, 131_072, 532_480, 16_777_216] {
            sizes.extend((boundary - 40..boundary + 40).map(|s| s * 512));
        }
        sizes.extend((1..300).map(|i| i * 7 * MIB + 512 * i));
        for size in sizes {
            let g = Geometry::plan(size).unwrap();
            let entries = u64::from(g.fat_sectors) * 512 / g.fat_entry_bytes();
            assert!(entries >= u64::from(g.clusters) + 2, "{size}: {g:?}");
            let smaller = g.clusters_with(g.fat_sectors - 1);
            assert!(
                g.fat_sectors_for(smaller) > u64::from(g.fat_sectors - 1),
                "{size}"
            );
            let data_end =
                g.cluster_offset(2) + u64::from(g.clusters) * u64::from(g.cluster_bytes());
            assert!(data_end <= g.volume_bytes(), "{size}");
            assert!(
                g.volume_bytes() - data_end < u64::from(g.cluster_bytes()),
                "{size}"
            );
        }
    }
}
