//! A reader for FAT16 and FAT32 volumes: enough to list directories and read files by
//! path (long names included), to check what [`write_fat`](crate::write_fat) wrote or read a
//! volume mkfs.fat made. Every field and cluster number is checked before use: a damaged or
//! hostile volume gives [`Error::Corrupt`], never a panic, a hang or an allocation larger
//! than what is on the disk.

use std::collections::HashSet;

use d2l_disk::bytes::{le16, le32, FromBytes};
use d2l_disk::VirtualDisk;

use crate::layout::{FatKind, Geometry};
use crate::name::{checksum, fold_case, long_name_piece, short_name_text, ShortName};
use crate::ondisk::*;
use crate::{Error, Result};

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatEntry {
    /// The long name, or the short name as text when there is none.
    pub name: String,
    /// The short name as text ("BOOTX64.EFI", "GRUB~1.CFG").
    pub short_name: String,
    /// A subdirectory rather than a file.
    pub is_dir: bool,
    /// Bytes of a file; 0 for a directory.
    pub size: u32,
    /// The first cluster (0 for an empty file).
    pub first_cluster: u32,
}

/// A FAT volume on a disk, opened for reading.
pub struct FatVolume<'d> {
    disk: &'d dyn VirtualDisk,
    offset: u64,
    geometry: Geometry,
    /// FAT32's root directory cluster; unused on FAT16.
    root_cluster: u32,
    /// Entries of FAT16's fixed root directory.
    root_entries: u32,
    volume_id: u32,
}

/// Where a directory's entries are.
#[derive(Clone, Copy)]
enum DirLocation {
    /// FAT16's fixed root directory region.
    FixedRoot,
    /// A cluster chain.
    Chain(u32),
}

impl std::fmt::Debug for FatVolume<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FatVolume")
            .field("offset", &self.offset)
            .field("geometry", &self.geometry)
            .field("volume_id", &self.volume_id)
            .finish()
    }
}

impl<'d> FatVolume<'d> {
    /// Opens the volume whose boot sector is at byte `offset` of `disk`, checking its
    /// boot sector against the FAT specification.
    pub fn open(disk: &'d dyn VirtualDisk, offset: u64) -> Result<Self> {
        let corrupt = |reason: String| Error::Corrupt { offset, reason };
        let mut sector = [0u8; SECTOR_BYTES as usize];
        disk.read_at(&mut sector, offset)
            .map_err(|source| Error::Io { offset, source })?;
        if sector[510..] != BOOT_SIGNATURE {
            return Err(corrupt("no boot sector signature 55 AA".into()));
        }
        let (bpb, _) = Bpb::read_from_prefix(&sector).expect("36 of 512 bytes");
        let sector_bytes = u32::from(bpb.bpb_byts_per_sec.get());
        if !matches!(sector_bytes, 512 | 1024 | 2048 | 4096) {
            return Err(corrupt(format!("{sector_bytes} bytes per sector")));
        }
        let sectors_per_cluster = u32::from(bpb.bpb_sec_per_clus);
        if !sectors_per_cluster.is_power_of_two() {
            return Err(corrupt(format!(
                "{sectors_per_cluster} sectors per cluster"
            )));
        }
        let reserved_sectors = u32::from(bpb.bpb_rsvd_sec_cnt.get());
        let num_fats = u32::from(bpb.bpb_num_fats);
        if reserved_sectors == 0 || num_fats == 0 {
            return Err(corrupt("no reserved sectors or no FAT".into()));
        }
        let root_entries = u32::from(bpb.bpb_root_ent_cnt.get());
        let root_dir_sectors = (root_entries * DIR_ENTRY_BYTES).div_ceil(sector_bytes);
        let total_sectors = match bpb.bpb_tot_sec16.get() {
            0 => bpb.bpb_tot_sec32.get(),
            n => u32::from(n),
        };
        let fat_sectors = match bpb.bpb_fat_sz16.get() {
            0 => le32(&sector, std::mem::offset_of!(BootSector32, bpb_fat_sz32)),
            n => u32::from(n),
        };
        let metadata = u64::from(reserved_sectors)
            + u64::from(num_fats) * u64::from(fat_sectors)
            + u64::from(root_dir_sectors);
        let data_sectors = u64::from(total_sectors)
            .checked_sub(metadata)
            .filter(|&d| d > 0)
            .ok_or_else(|| corrupt(format!("{total_sectors} sectors hold no data area")))?;
        let clusters = u32::try_from(data_sectors / u64::from(sectors_per_cluster))
            .expect("fewer clusters than sectors");
        let kind = if clusters < MIN_FAT16_CLUSTERS {
            return Err(corrupt(format!("{clusters} clusters: FAT12, not read")));
        } else if clusters < MIN_FAT32_CLUSTERS {
            FatKind::Fat16
        } else if clusters <= MAX_FAT32_CLUSTERS {
            FatKind::Fat32
        } else {
            return Err(corrupt(format!("{clusters} clusters, more than FAT32 has")));
        };
        let geometry = Geometry {
            kind,
            sector_bytes,
            total_sectors,
            reserved_sectors,
            num_fats,
            fat_sectors,
            root_dir_sectors,
            sectors_per_cluster,
            clusters,
        };
        let fat_entries = geometry.fat_bytes() / geometry.fat_entry_bytes();
        if fat_entries < u64::from(clusters) + 2 {
            return Err(corrupt(format!(
                "a FAT of {fat_entries} entries for {clusters} clusters"
            )));
        }
        let (ext_at, root_cluster) = match kind {
            FatKind::Fat16 => {
                if root_entries == 0 {
                    return Err(corrupt("FAT16 without root directory entries".into()));
                }
                (std::mem::offset_of!(BootSector16, ext), 0)
            }
            FatKind::Fat32 => {
                let (boot, _) = BootSector32::read_from_prefix(&sector).expect("512 bytes");
                let root = boot.bpb_root_clus.get();
                if root_entries != 0 || !(FIRST_CLUSTER..clusters + FIRST_CLUSTER).contains(&root) {
                    return Err(corrupt(format!(
                        "FAT32 with {root_entries} fixed root entries, root at cluster {root}"
                    )));
                }
                (std::mem::offset_of!(BootSector32, ext), root)
            }
        };
        let (ext, _) = ExtendedBootRecord::read_from_prefix(&sector[ext_at..]).expect("26 bytes");
        let volume_id = if ext.bs_boot_sig == EXTENDED_BOOT_SIGNATURE {
            ext.bs_vol_id.get()
        } else {
            0
        };
        Ok(FatVolume {
            disk,
            offset,
            geometry,
            root_cluster,
            root_entries,
            volume_id,
        })
    }

    /// FAT16 or FAT32, by the number of clusters.
    pub fn kind(&self) -> FatKind {
        self.geometry.kind
    }

    /// Bytes per cluster.
    pub fn cluster_bytes(&self) -> u32 {
        self.geometry.cluster_bytes()
    }

    /// Data clusters of the volume.
    pub fn clusters(&self) -> u32 {
        self.geometry.clusters
    }

    /// Bytes the volume covers, by its boot sector.
    pub fn volume_bytes(&self) -> u64 {
        self.geometry.volume_bytes()
    }

    /// The volume serial number (0 without an extended boot signature).
    pub fn volume_id(&self) -> u32 {
        self.volume_id
    }

    /// The label of the root directory's volume-label entry, spaces trimmed.
    pub fn label(&self) -> Result<Option<String>> {
        Ok(self.read_entries(self.root())?.1)
    }

    /// The entries of the directory at `path` ("" or "/" for the root), in stored order,
    /// without `.`, `..` and the volume label.
    pub fn read_dir(&self, path: &str) -> Result<Vec<FatEntry>> {
        let location = match self.lookup(path)? {
            None => self.root(),
            Some(entry) if entry.is_dir => self.subdir(&entry, path)?,
            Some(_) => return Err(Error::NotADirectory { path: path.into() }),
        };
        Ok(self.read_entries(location)?.0)
    }

    /// The contents of the file at `path`.
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        let entry = match self.lookup(path)? {
            Some(entry) if !entry.is_dir => entry,
            _ => return Err(Error::IsADirectory { path: path.into() }),
        };
        if entry.size == 0 {
            return Ok(Vec::new());
        }
        let cluster_bytes = u64::from(self.cluster_bytes());
        let needed = u64::from(entry.size).div_ceil(cluster_bytes);
        let chain = self.chain(entry.first_cluster, Some(needed))?;
        // The chain exists on the disk: now the file's size is worth allocating.
        let bytes = usize::try_from(needed * cluster_bytes)
            .map_err(|_| self.corrupt(format!("{path}: larger than this machine's memory")))?;
        let mut data = vec![0u8; bytes];
        self.read_clusters(&chain, &mut data)?;
        data.truncate(entry.size as usize);
        Ok(data)
    }

    fn root(&self) -> DirLocation {
        match self.geometry.kind {
            FatKind::Fat16 => DirLocation::FixedRoot,
            FatKind::Fat32 => DirLocation::Chain(self.root_cluster),
        }
    }

    fn subdir(&self, entry: &FatEntry, path: &str) -> Result<DirLocation> {
        if entry.first_cluster == 0 {
            return Err(self.corrupt(format!("directory {path:?} has no cluster")));
        }
        Ok(DirLocation::Chain(entry.first_cluster))
    }

    /// The entry at `path`, `None` for the root. Names compare without regard to case,
    /// long or short.
    fn lookup(&self, path: &str) -> Result<Option<FatEntry>> {
        let mut location = self.root();
        let mut found = None;
        for name in path.split('/').filter(|n| !n.is_empty()) {
            if let Some(parent) = &found {
                location = match parent {
                    FatEntry { is_dir: true, .. } => self.subdir(parent, path)?,
                    _ => return Err(Error::NotADirectory { path: path.into() }),
                };
            }
            let key = fold_case(name);
            let entries = self.read_entries(location)?.0;
            found = Some(
                entries
                    .into_iter()
                    .find(|e| fold_case(&e.name) == key || fold_case(&e.short_name) == key)
                    .ok_or_else(|| Error::NotFound { path: path.into() })?,
            );
        }
        Ok(found)
    }

    /// A directory's entries and the volume label among them.
    fn read_entries(&self, location: DirLocation) -> Result<(Vec<FatEntry>, Option<String>)> {
        let bytes = match location {
            DirLocation::FixedRoot => {
                let mut bytes = vec![0u8; (self.root_entries * DIR_ENTRY_BYTES) as usize];
                self.read(&mut bytes, self.geometry.root_dir_offset())?;
                bytes
            }
            DirLocation::Chain(first) => {
                let chain = self.chain(first, None)?;
                let mut bytes = vec![0u8; chain.len() * self.cluster_bytes() as usize];
                self.read_clusters(&chain, &mut bytes)?;
                bytes
            }
        };
        let mut entries = Vec::new();
        let mut label = None;
        let mut long = LongName::default();
        for raw in bytes.chunks_exact(DIR_ENTRY_BYTES as usize) {
            match raw[0] {
                ENTRY_END => break,
                ENTRY_DELETED => {
                    long = LongName::default();
                    continue;
                }
                _ => {}
            }
            if raw[11] & ATTR_LONG_NAME_MASK == ATTR_LONG_NAME {
                long.add(&LfnEntry::read_from_bytes(raw).expect("32 bytes"));
                continue;
            }
            let entry = DirEntry::read_from_bytes(raw).expect("32 bytes");
            let long_name = std::mem::take(&mut long).finish(&entry.dir_name);
            if entry.dir_attr & ATTR_VOLUME_ID != 0 {
                // The label is 11 characters, not a base name and an extension.
                let text: String = entry.dir_name.iter().map(|&b| char::from(b)).collect();
                label = Some(text.trim_end().to_owned());
                continue;
            }
            if entry.dir_name == *b".          " || entry.dir_name == *b"..         " {
                continue;
            }
            let short_name = short_name_text(&entry.dir_name, entry.dir_nt_res);
            let hi = match self.geometry.kind {
                // FAT16 has no high half: the field is reserved there.
                FatKind::Fat16 => 0,
                FatKind::Fat32 => u32::from(entry.dir_fst_clus_hi.get()) << 16,
            };
            let is_dir = entry.dir_attr & ATTR_DIRECTORY != 0;
            entries.push(FatEntry {
                name: long_name.unwrap_or_else(|| short_name.clone()),
                short_name,
                is_dir,
                size: if is_dir { 0 } else { entry.dir_file_size.get() },
                first_cluster: hi | u32::from(entry.dir_fst_clus_lo.get()),
            });
        }
        Ok((entries, label))
    }

    /// The clusters of the chain from `first`. With `exact`, the chain must have that many
    /// clusters (a file's); without, it may have up to a directory's maximum.
    fn chain(&self, first: u32, exact: Option<u64>) -> Result<Vec<u32>> {
        let g = &self.geometry;
        let valid = FIRST_CLUSTER..g.clusters + FIRST_CLUSTER;
        let limit = exact.unwrap_or(
            (MAX_DIR_ENTRIES * u64::from(DIR_ENTRY_BYTES)).div_ceil(u64::from(g.cluster_bytes())),
        );
        let (min_end, bad) = match g.kind {
            FatKind::Fat16 => (FAT16_MIN_END_OF_CHAIN, FAT16_BAD_CLUSTER),
            FatKind::Fat32 => (FAT32_MIN_END_OF_CHAIN, FAT32_BAD_CLUSTER),
        };
        let mut fat = FatCache::default();
        let mut seen = HashSet::new();
        let mut chain = Vec::new();
        let mut cluster = first;
        loop {
            if !valid.contains(&cluster) {
                return Err(self.corrupt(format!(
                    "cluster {cluster} of the chain from {first} is outside 2..{}",
                    valid.end
                )));
            }
            if !seen.insert(cluster) {
                return Err(self.corrupt(format!(
                    "the chain from cluster {first} loops at cluster {cluster}"
                )));
            }
            chain.push(cluster);
            let next = self.fat_entry(&mut fat, cluster)?;
            let ends = next >= min_end;
            if ends || chain.len() as u64 == limit {
                match exact {
                    Some(n) if ends != (chain.len() as u64 == n) => {
                        return Err(self.corrupt(format!(
                            "the chain from cluster {first} is not the {n} clusters of its file"
                        )))
                    }
                    None if !ends => {
                        return Err(self.corrupt(format!(
                            "the directory at cluster {first} is longer than {limit} clusters"
                        )))
                    }
                    _ => return Ok(chain),
                }
            }
            if next == bad || next < FIRST_CLUSTER {
                return Err(self.corrupt(format!(
                    "cluster {cluster} of the chain from {first} links to {next:#x}"
                )));
            }
            cluster = next;
        }
    }

    /// The FAT entry of `cluster` (checked in range), from the first FAT.
    fn fat_entry(&self, cache: &mut FatCache, cluster: u32) -> Result<u32> {
        let g = &self.geometry;
        let at = u64::from(cluster) * g.fat_entry_bytes();
        let sector = at / u64::from(g.sector_bytes);
        if cache.sector != Some(sector) {
            cache.bytes.resize(g.sector_bytes as usize, 0);
            self.read(
                &mut cache.bytes,
                g.fat_offset(0) + sector * u64::from(g.sector_bytes),
            )?;
            cache.sector = Some(sector);
        }
        let within = usize::try_from(at % u64::from(g.sector_bytes)).expect("below a sector");
        Ok(match g.kind {
            FatKind::Fat16 => u32::from(le16(&cache.bytes, within)),
            FatKind::Fat32 => le32(&cache.bytes, within) & FAT32_ENTRY_MASK,
        })
    }

    /// Reads the clusters of `chain` into `out`, contiguous runs at once.
    fn read_clusters(&self, chain: &[u32], out: &mut [u8]) -> Result<()> {
        let cluster_bytes = self.cluster_bytes() as usize;
        let mut start = 0;
        while start < chain.len() {
            let mut end = start + 1;
            while end < chain.len() && chain[end] == chain[end - 1] + 1 {
                end += 1;
            }
            let buf = &mut out[start * cluster_bytes..end * cluster_bytes];
            self.read(buf, self.geometry.cluster_offset(chain[start]))?;
            start = end;
        }
        Ok(())
    }

    fn read(&self, buf: &mut [u8], at: u64) -> Result<()> {
        let offset = self.offset + at;
        self.disk
            .read_at(buf, offset)
            .map_err(|source| Error::Io { offset, source })
    }

    fn corrupt(&self, reason: String) -> Error {
        Error::Corrupt {
            offset: self.offset,
            reason,
        }
    }
}

/// The FAT sector last read, for walking a chain without a read per entry.
#[derive(Default)]
struct FatCache {
    sector: Option<u64>,
    bytes: Vec<u8>,
}

/// A long name being collected from its entries, last piece first; anything out of order
/// drops it, as the specification says (the short name stands alone then).
#[derive(Default)]
struct LongName {
    checksum: u8,
    /// The order of the piece expected next; 0 when complete or when there is none.
    next: u8,
    chars: Vec<u16>,
    started: bool,
}

impl LongName {
    fn add(&mut self, entry: &LfnEntry) {
        let order = entry.ldir_ord & !LFN_LAST;
        if entry.ldir_ord & LFN_LAST != 0 {
            *self = LongName::default();
            if !(1..=LFN_MAX_ORDER).contains(&order) {
                return;
            }
            self.started = true;
            self.checksum = entry.ldir_chksum;
            self.chars = vec![0; usize::from(order) * LFN_CHARS];
        } else if !self.started || order != self.next || entry.ldir_chksum != self.checksum {
            *self = LongName::default();
            return;
        }
        let at = (usize::from(order) - 1) * LFN_CHARS;
        for (slot, c) in self.chars[at..at + LFN_CHARS]
            .iter_mut()
            .zip(long_name_piece(entry))
        {
            *slot = c;
        }
        self.next = order - 1;
    }

    /// The long name, when complete and made for `short`.
    fn finish(self, short: &ShortName) -> Option<String> {
        if !self.started || self.next != 0 || self.checksum != checksum(short) {
            return None;
        }
        let end = self
            .chars
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(self.chars.len());
        Some(String::from_utf16_lossy(&self.chars[..end]))
    }
}
