//! `write_fat`: plan the clusters of the whole tree, then write every metadata region
//! explicitly (the disk may hold old bytes) and the file data; free clusters stay unwritten.

use std::collections::{HashMap, HashSet};

use d2l_disk::bytes::{FromZeros, IntoBytes};
use d2l_disk::VirtualDisk;

use crate::layout::{FatKind, Geometry, BACKUP_BOOT_SECTOR, FAT16_ROOT_ENTRIES, FSINFO_SECTOR};
use crate::name::{
    basis_name, exact_short_name, long_name_entries, lossless_short_name, with_numeric_tail,
    ShortName,
};
use crate::ondisk::*;
use crate::time::{dos_time, DosTime};
use crate::tree::{Dir, FatTree, NodeKind};
use crate::{Error, Result};

/// How to stamp the volume. Nothing in it is random: the same tree and options give the
/// same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatOptions {
    /// The volume serial number (`BS_VolID`), derived by the caller.
    pub volume_id: u32,
    /// Up to 11 characters of upper-case short-name characters and spaces, e.g. "ESP";
    /// empty for none. Written to the boot sector and as the root's volume-label entry.
    pub label: String,
    /// Unix seconds for every timestamp, clamped to the DOS range (1980..=2107).
    pub modified: u64,
}

/// What [`write_fat`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatSummary {
    /// FAT16 or FAT32, by the volume's size.
    pub kind: FatKind,
    /// Bytes per cluster.
    pub cluster_bytes: u32,
    /// Data clusters of the volume.
    pub clusters: u32,
    /// Clusters the tree (and FAT32's root directory) takes, from cluster 2 on.
    pub used_clusters: u32,
}

/// Writes `tree` as a FAT volume of `size` bytes at byte `offset` of `disk` (a partition's
/// start: a whole sector, recorded as the hidden sectors). FAT16 or FAT32 and the cluster
/// size follow from `size` (see the crate documentation). Files and directories get
/// contiguous clusters in path order.
pub fn write_fat(
    disk: &dyn VirtualDisk,
    offset: u64,
    size: u64,
    tree: &FatTree,
    options: &FatOptions,
) -> Result<FatSummary> {
    let geometry = Geometry::plan(size)?;
    let hidden_sectors = u32::try_from(offset / u64::from(SECTOR_BYTES))
        .ok()
        .filter(|_| offset.is_multiple_of(u64::from(SECTOR_BYTES)))
        .ok_or(Error::BadOffset { offset })?;
    let label = volume_label(&options.label)?;
    let placement = Placement::plan(&geometry, tree, label, dos_time(options.modified))?;
    let volume = Volume {
        disk,
        offset,
        geometry: &geometry,
    };
    disk.grow_to(offset + geometry.volume_bytes())
        .map_err(|source| Error::Io { offset, source })?;
    volume.write_reserved(hidden_sectors, options.volume_id, label, &placement)?;
    volume.write_fats(&placement)?;
    for (cluster, bytes) in &placement.dirs {
        match cluster {
            Some(cluster) => volume.write(bytes, geometry.cluster_offset(*cluster))?,
            None => volume.write(bytes, geometry.root_dir_offset())?,
        }
    }
    for (cluster, data) in &placement.files {
        let at = geometry.cluster_offset(*cluster);
        volume.write(data, at)?;
        let tail = data
            .len()
            .next_multiple_of(geometry.cluster_bytes() as usize)
            - data.len();
        volume.write(&vec![0; tail], at + data.len() as u64)?;
    }
    Ok(FatSummary {
        kind: geometry.kind,
        cluster_bytes: geometry.cluster_bytes(),
        clusters: geometry.clusters,
        used_clusters: placement.used_clusters,
    })
}

/// The label as stored, or `None` for an empty one.
fn volume_label(label: &str) -> Result<Option<ShortName>> {
    let invalid = |reason| Error::InvalidLabel {
        label: label.into(),
        reason,
    };
    if label.is_empty() {
        return Ok(None);
    }
    if label.len() > 11 {
        return Err(invalid("longer than 11 characters"));
    }
    if label.starts_with(' ') {
        return Err(invalid("begins with a space"));
    }
    if label.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(invalid("lower case: FAT labels are upper case"));
    }
    if !label
        .bytes()
        .all(|b| b == b' ' || crate::name::is_short_name_char(b))
    {
        return Err(invalid(
            "only A-Z, 0-9, spaces and $%'-_@~`!(){}^#& are allowed",
        ));
    }
    let mut stored = [b' '; 11];
    stored[..label.len()].copy_from_slice(label.as_bytes());
    Ok(Some(stored))
}

/// Every cluster of the tree, decided before anything is written.
struct Placement<'t> {
    /// Directory contents, whole clusters, by first cluster (`None`: FAT16's root region).
    dirs: Vec<(Option<u32>, Vec<u8>)>,
    /// File data by first cluster (non-empty files only).
    files: Vec<(u32, &'t [u8])>,
    /// The last cluster of every chain, ascending: chains are contiguous and follow each
    /// other from cluster 2, so these and `used_clusters` are the whole FAT.
    chain_ends: Vec<u32>,
    used_clusters: u32,
}

/// The names of one directory's children, in its order: the short name, and whether the
/// long name needs long-name entries.
struct ChildName {
    short: ShortName,
    long: bool,
}

impl<'t> Placement<'t> {
    fn plan(
        geometry: &Geometry,
        tree: &'t FatTree,
        label: Option<ShortName>,
        stamp: DosTime,
    ) -> Result<Self> {
        let cluster_bytes = u64::from(geometry.cluster_bytes());
        // First the sizes, so that nothing is numbered past the volume's clusters.
        let root_entries = u64::from(label.is_some()) + entries(&tree.root, "")?;
        let root_clusters = match geometry.kind {
            FatKind::Fat16 => {
                if root_entries > u64::from(FAT16_ROOT_ENTRIES) {
                    return Err(Error::DirectoryTooLarge {
                        path: String::new(),
                        entries: root_entries,
                        max: FAT16_ROOT_ENTRIES.into(),
                    });
                }
                0
            }
            FatKind::Fat32 => dir_clusters("", root_entries, cluster_bytes)?,
        };
        let needed = root_clusters + clusters_below(&tree.root, "", cluster_bytes)?;
        if needed > u64::from(geometry.clusters) {
            return Err(Error::TreeTooLarge {
                needed: needed * cluster_bytes,
                available: u64::from(geometry.clusters) * cluster_bytes,
            });
        }
        let mut placement = Placement {
            dirs: Vec::new(),
            files: Vec::new(),
            chain_ends: Vec::new(),
            used_clusters: 0,
        };
        let mut planner = Planner {
            placement: &mut placement,
            cluster_bytes: geometry.cluster_bytes(),
            stamp,
            next: FIRST_CLUSTER,
        };
        let root = match geometry.kind {
            FatKind::Fat16 => None,
            FatKind::Fat32 => Some(planner.allocate(root_clusters)),
        };
        let leading = label
            .map(|label| planner.entry(label, ATTR_VOLUME_ID, 0, 0))
            .into_iter()
            .collect();
        planner.place(&tree.root, "", root, leading, 0)?;
        let used = planner.next - FIRST_CLUSTER;
        debug_assert_eq!(u64::from(used), needed, "the sizes and the placement agree");
        placement.used_clusters = used;
        Ok(placement)
    }
}

/// Numbers clusters in path order and encodes the directories.
struct Planner<'p, 't> {
    placement: &'p mut Placement<'t>,
    cluster_bytes: u32,
    stamp: DosTime,
    /// The next free cluster.
    next: u32,
}

impl<'t> Planner<'_, 't> {
    /// The first of `clusters` contiguous clusters (0 for none, as an empty file has).
    fn allocate(&mut self, clusters: u64) -> u32 {
        if clusters == 0 {
            return 0;
        }
        let clusters = u32::try_from(clusters).expect("the tree fits the volume");
        let first = self.next;
        self.next += clusters;
        self.placement.chain_ends.push(self.next - 1);
        first
    }

    /// Places the children of `dir` and their descendants, then encodes `dir`: its
    /// `leading` entries (the label, or `.` and `..`) and one or more per child. `at` is its
    /// first cluster, `None` for FAT16's root region; `parent_of_children` what the `..` of
    /// its subdirectories names (0 for the root, on FAT32 too).
    fn place(
        &mut self,
        dir: &'t Dir,
        path: &str,
        at: Option<u32>,
        leading: Vec<DirEntry>,
        parent_of_children: u32,
    ) -> Result<()> {
        let names = child_names(dir, path)?;
        let mut bytes: Vec<u8> = leading.iter().flat_map(|e| e.as_bytes()).copied().collect();
        for (child, name) in dir.children.iter().zip(&names) {
            let (attr, first, size) = match &child.kind {
                NodeKind::File(data) => {
                    let first =
                        self.allocate((data.len() as u64).div_ceil(u64::from(self.cluster_bytes)));
                    if first != 0 {
                        self.placement.files.push((first, data));
                    }
                    let size = u32::try_from(data.len()).expect("add_file checks the size");
                    (ATTR_ARCHIVE, first, size)
                }
                NodeKind::Dir(sub) => {
                    let sub_path = join(path, &child.name);
                    let count = entries(sub, &sub_path)? + 2;
                    let first = self.allocate(dir_clusters(
                        &sub_path,
                        count,
                        u64::from(self.cluster_bytes),
                    )?);
                    let dots = vec![
                        self.entry(*b".          ", ATTR_DIRECTORY, first, 0),
                        self.entry(*b"..         ", ATTR_DIRECTORY, parent_of_children, 0),
                    ];
                    self.place(sub, &sub_path, Some(first), dots, first)?;
                    (ATTR_DIRECTORY, first, 0)
                }
            };
            if name.long {
                for piece in long_name_entries(&child.ucs2, &name.short) {
                    bytes.extend_from_slice(piece.as_bytes());
                }
            }
            bytes.extend_from_slice(self.entry(name.short, attr, first, size).as_bytes());
        }
        // Whole clusters (at least one), or FAT16's whole root region: zeros after the last
        // entry mark the end, whatever the disk held before.
        let region = match at {
            Some(_) => bytes
                .len()
                .max(1)
                .next_multiple_of(self.cluster_bytes as usize),
            None => (FAT16_ROOT_ENTRIES * DIR_ENTRY_BYTES) as usize,
        };
        bytes.resize(region, 0);
        self.placement.dirs.push((at, bytes));
        Ok(())
    }

    fn entry(&self, name: ShortName, attr: u8, first: u32, size: u32) -> DirEntry {
        let t = self.stamp;
        DirEntry {
            dir_name: name,
            dir_attr: attr,
            dir_nt_res: 0,
            dir_crt_time_tenth: t.hundredths,
            dir_crt_time: t.time.into(),
            dir_crt_date: t.date.into(),
            dir_lst_acc_date: t.date.into(),
            dir_fst_clus_hi: u16::try_from(first >> 16).expect("16 bits").into(),
            dir_wrt_time: t.time.into(),
            dir_wrt_date: t.date.into(),
            dir_fst_clus_lo: u16::try_from(first & 0xFFFF).expect("16 bits").into(),
            dir_file_size: size.into(),
        }
    }
}

/// Short names for the children of `dir`: upper-case 8.3 names as they are, names that
/// only lack upper case as such ("grub.cfg": GRUB.CFG), all others `BASIS~N.EXT` with the
/// smallest N not taken in the directory.
fn child_names(dir: &Dir, path: &str) -> Result<Vec<ChildName>> {
    let lossless: Vec<Option<ShortName>> = dir
        .children
        .iter()
        .map(|c| lossless_short_name(&c.name))
        .collect();
    // Names are unique without regard to case, so these are too.
    let mut taken: HashSet<ShortName> = lossless.iter().flatten().copied().collect();
    // Where the search for each basis resumes: smaller tails are taken for good.
    let mut next_tail: HashMap<(Vec<u8>, Vec<u8>), u32> = HashMap::new();
    dir.children
        .iter()
        .zip(lossless)
        .map(|(child, lossless)| {
            let long = exact_short_name(&child.name).is_none();
            let short = match lossless {
                Some(short) => short,
                None => {
                    let (base, ext) = basis_name(&child.name);
                    let from = next_tail.get(&(base.clone(), ext.clone())).copied();
                    let (n, short) = (from.unwrap_or(1)..)
                        .map_while(|n| with_numeric_tail(&base, &ext, n).map(|s| (n, s)))
                        .find(|(_, candidate)| !taken.contains(candidate))
                        .ok_or_else(|| Error::InvalidName {
                            path: join(path, &child.name),
                            reason: "no numeric tail left for its short name".into(),
                        })?;
                    next_tail.insert((base, ext), n + 1);
                    short
                }
            };
            taken.insert(short);
            Ok(ChildName { short, long })
        })
        .collect()
}

/// How many directory entries the children of `dir` take (without `.`, `..` and a label).
fn entries(dir: &Dir, path: &str) -> Result<u64> {
    let names = child_names(dir, path)?;
    let count = dir
        .children
        .iter()
        .zip(&names)
        .map(|(child, name)| {
            1 + if name.long {
                child.ucs2.len().div_ceil(LFN_CHARS) as u64
            } else {
                0
            }
        })
        .sum();
    Ok(count)
}

/// Clusters of a directory of `count` entries: at least one, at most 65536 entries.
fn dir_clusters(path: &str, count: u64, cluster_bytes: u64) -> Result<u64> {
    if count > MAX_DIR_ENTRIES {
        return Err(Error::DirectoryTooLarge {
            path: path.into(),
            entries: count,
            max: MAX_DIR_ENTRIES,
        });
    }
    Ok((count * u64::from(DIR_ENTRY_BYTES))
        .div_ceil(cluster_bytes)
        .max(1))
}

/// Clusters of everything below `dir` (not `dir` itself).
fn clusters_below(dir: &Dir, path: &str, cluster_bytes: u64) -> Result<u64> {
    let mut total = 0;
    for child in &dir.children {
        total += match &child.kind {
            NodeKind::File(data) => (data.len() as u64).div_ceil(cluster_bytes),
            NodeKind::Dir(sub) => {
                let child_path = join(path, &child.name);
                let count = entries(sub, &child_path)?;
                dir_clusters(&child_path, count + 2, cluster_bytes)?
                    + clusters_below(sub, &child_path, cluster_bytes)?
            }
        };
    }
    Ok(total)
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.into()
    } else {
        format!("{path}/{name}")
    }
}

/// The volume on its disk.
struct Volume<'d> {
    disk: &'d dyn VirtualDisk,
    offset: u64,
    geometry: &'d Geometry,
}

/// FAT bytes produced per write.
const FAT_CHUNK_BYTES: u32 = 1 << 20;

impl Volume<'_> {
    /// Writes `bytes` at `at` bytes into the volume.
    fn write(&self, bytes: &[u8], at: u64) -> Result<()> {
        let offset = self.offset + at;
        self.disk
            .write_at(bytes, offset)
            .map_err(|source| Error::Io { offset, source })
    }

    /// The reserved sectors: the boot sector, and on FAT32 FSInfo and both backups.
    fn write_reserved(
        &self,
        hidden_sectors: u32,
        volume_id: u32,
        label: Option<ShortName>,
        placement: &Placement,
    ) -> Result<()> {
        let g = self.geometry;
        let sector = SECTOR_BYTES as usize;
        let mut reserved = vec![0u8; g.reserved_sectors as usize * sector];
        let bpb = |jump, root_entries: u32, fat_sz16: u32| Bpb {
            bs_jmp_boot: jump,
            bs_oem_name: OEM_NAME,
            bpb_byts_per_sec: u16::try_from(g.sector_bytes).expect("512").into(),
            bpb_sec_per_clus: u8::try_from(g.sectors_per_cluster).expect("at most 64"),
            bpb_rsvd_sec_cnt: u16::try_from(g.reserved_sectors)
                .expect("at most 32")
                .into(),
            bpb_num_fats: u8::try_from(g.num_fats).expect("2"),
            bpb_root_ent_cnt: u16::try_from(root_entries).expect("512 or 0").into(),
            bpb_tot_sec16: u16::try_from(g.total_sectors).unwrap_or(0).into(),
            bpb_media: MEDIA_FIXED_DISK,
            bpb_fat_sz16: u16::try_from(fat_sz16)
                .expect("FAT16's FAT is small")
                .into(),
            bpb_sec_per_trk: SECTORS_PER_TRACK.into(),
            bpb_num_heads: HEADS.into(),
            bpb_hidd_sec: hidden_sectors.into(),
            bpb_tot_sec32: if g.total_sectors > u32::from(u16::MAX) {
                g.total_sectors
            } else {
                0
            }
            .into(),
        };
        let ext = |fs_type| ExtendedBootRecord {
            bs_drv_num: DRIVE_NUMBER_HARD_DISK,
            bs_reserved1: 0,
            bs_boot_sig: EXTENDED_BOOT_SIGNATURE,
            bs_vol_id: volume_id.into(),
            bs_vol_lab: label.unwrap_or(NO_LABEL),
            bs_fil_sys_type: fs_type,
        };
        match g.kind {
            FatKind::Fat16 => {
                let mut boot = BootSector16::new_zeroed();
                boot.bpb = bpb(JUMP_FAT16, FAT16_ROOT_ENTRIES, g.fat_sectors);
                boot.ext = ext(FS_TYPE_FAT16);
                boot.signature = BOOT_SIGNATURE;
                reserved[..sector].copy_from_slice(boot.as_bytes());
            }
            FatKind::Fat32 => {
                let mut boot = BootSector32::new_zeroed();
                boot.bpb = bpb(JUMP_FAT32, 0, 0);
                boot.bpb_fat_sz32 = g.fat_sectors.into();
                boot.bpb_root_clus = FIRST_CLUSTER.into();
                boot.bpb_fs_info = u16::try_from(FSINFO_SECTOR).expect("1").into();
                boot.bpb_bk_boot_sec = u16::try_from(BACKUP_BOOT_SECTOR).expect("6").into();
                boot.ext = ext(FS_TYPE_FAT32);
                boot.signature = BOOT_SIGNATURE;
                let free = g.clusters - placement.used_clusters;
                let mut info = FsInfo::new_zeroed();
                info.fsi_lead_sig = FSINFO_LEAD_SIGNATURE.into();
                info.fsi_struc_sig = FSINFO_STRUCT_SIGNATURE.into();
                info.fsi_free_count = free.into();
                info.fsi_nxt_free = if free > 0 {
                    FIRST_CLUSTER + placement.used_clusters
                } else {
                    FSINFO_UNKNOWN
                }
                .into();
                info.fsi_trail_sig = FSINFO_TRAIL_SIGNATURE.into();
                for first in [0, BACKUP_BOOT_SECTOR as usize] {
                    reserved[first * sector..][..sector].copy_from_slice(boot.as_bytes());
                    let at = (first + FSINFO_SECTOR as usize) * sector;
                    reserved[at..][..sector].copy_from_slice(info.as_bytes());
                }
            }
        }
        self.write(&reserved, 0)
    }

    /// Both FATs, whole: the reserved entries, one chain per file and directory, zeros.
    fn write_fats(&self, placement: &Placement) -> Result<()> {
        let g = self.geometry;
        let (media_entry, end_of_chain) = match g.kind {
            FatKind::Fat16 => (0xFF00 | u32::from(MEDIA_FIXED_DISK), FAT16_END_OF_CHAIN),
            FatKind::Fat32 => (
                0x0FFF_FF00 | u32::from(MEDIA_FIXED_DISK),
                FAT32_END_OF_CHAIN,
            ),
        };
        let entry_bytes = g.fat_entry_bytes();
        let used_end = u64::from(FIRST_CLUSTER + placement.used_clusters);
        let mut ends = placement
            .chain_ends
            .iter()
            .map(|&c| u64::from(c))
            .peekable();
        let mut chunk = Vec::with_capacity(FAT_CHUNK_BYTES as usize);
        let mut at = 0;
        while at < g.fat_bytes() {
            let len = u64::from(FAT_CHUNK_BYTES).min(g.fat_bytes() - at);
            chunk.clear();
            for index in at / entry_bytes..(at + len) / entry_bytes {
                let value = match index {
                    0 => media_entry,
                    1 => end_of_chain,
                    i if i >= used_end => 0,
                    i if ends.peek() == Some(&i) => {
                        ends.next();
                        end_of_chain
                    }
                    i => u32::try_from(i + 1).expect("cluster numbers are 28 bits"),
                };
                match g.kind {
                    FatKind::Fat16 => chunk.extend_from_slice(
                        &u16::try_from(value).expect("16-bit entries").to_le_bytes(),
                    ),
                    FatKind::Fat32 => chunk.extend_from_slice(&value.to_le_bytes()),
                }
            }
            for fat in 0..g.num_fats {
                self.write(&chunk, g.fat_offset(fat) + at)?;
            }
            at += len;
        }
        Ok(())
    }
}
