//! Which kernel modules a machine needs and the order to load them, from the kernel's own
//! index files: `modules.dep` (each module's path and the modules it needs),
//! `modules.builtin` (what is compiled in: nothing to load), `modules.alias` and
//! `modules.softdep` (`softdep ext4 pre: crypto-crc32c`: what a module asks for by name at
//! run time, through modprobe, which an initramfs without modprobe must load first).

use std::collections::{BTreeMap, BTreeSet, HashSet};

/// The network cards a machine made by d2l may have: virtio, e1000 and e1000e, VMware's
/// vmxnet3 (and the virtio bus). First: a card's link takes a while to come up (e1000 under
/// QEMU, two seconds), and settles while the disk's modules load.
const NETWORK_MODULES: &[&str] = &["virtio_pci", "virtio_net", "e1000", "e1000e", "vmxnet3"];

/// What reaches a disk: virtio, NVMe (clouds), SATA (VirtualBox, VMware), QEMU's IDE,
/// VMware's SCSI, and SCSI disks; those whose disks appear at once first. Not needed once
/// the root filesystem's disk has appeared.
pub const DISK_MODULES: &[&str] = &[
    "virtio_blk",
    "nvme",
    "virtio_scsi",
    "ahci",
    "ata_piix",
    "ata_generic",
    "vmw_pvscsi",
    "mptspi",
    "sd_mod",
];

/// The root filesystem.
const FILESYSTEM_MODULES: &[&str] = &["ext4"];

/// What a machine made by d2l needs to reach its network and root disk, in load order.
pub fn machine_modules() -> Vec<&'static str> {
    [NETWORK_MODULES, DISK_MODULES, FILESYSTEM_MODULES].concat()
}

/// The modules a kernel has, from its index files.
#[derive(Debug, Default)]
pub struct ModuleIndex {
    /// Module name to its path (relative to `/lib/modules/VERSION`) and its dependencies'
    /// paths.
    modules: BTreeMap<String, (String, Vec<String>)>,
    builtin: HashSet<String>,
    /// Alias to module names (`crypto-crc32c` to `crc32c_generic`, `crc32c_intel`).
    aliases: BTreeMap<String, Vec<String>>,
    /// Module name to the names it wants loaded first.
    soft_pre: BTreeMap<String, Vec<String>>,
    /// Module name to the device patterns it drives (`pci:v00008086d0000100Esv*...`).
    devices: BTreeMap<String, Vec<String>>,
}

/// The buses whose devices the initramfs matches drivers against: a driver for none of the
/// machine's devices is not loaded (probing costs time, under emulation most of all).
pub const DEVICE_BUSES: &[&str] = &["pci", "virtio"];

/// The modules to load, in order, and what was asked for but is not there.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LoadPlan {
    /// Paths relative to `/lib/modules/VERSION`, each after everything it needs.
    pub paths: Vec<String>,
    /// Names asked for that the kernel has built in.
    pub builtin: Vec<String>,
    /// Names asked for that the kernel has neither as a module nor built in.
    pub missing: Vec<String>,
    /// Each module asked for that is there to load: its name and the paths to load for it,
    /// everything it needs first (a path appears in every group that needs it; a loader
    /// skips what it has loaded).
    pub groups: Vec<(String, Vec<String>)>,
    /// The device patterns of the modules asked for that drive devices on
    /// [`DEVICE_BUSES`]: load one only when a device matches.
    pub devices: Vec<(String, Vec<String>)>,
}

/// A module's name from its path or name: the file name without `.ko` (and a compression
/// suffix), `-` read as `_` (the kernel's own rule).
pub fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = [".ko.xz", ".ko.zst", ".ko.gz", ".ko"]
        .iter()
        .find_map(|suffix| file.strip_suffix(suffix))
        .unwrap_or(file);
    stem.replace('-', "_")
}

impl ModuleIndex {
    /// Reads the index files' texts (any of them may be empty: a kernel with no modules).
    pub fn parse(dep: &str, builtin: &str, alias: &str, softdep: &str) -> ModuleIndex {
        let mut index = ModuleIndex::default();
        for line in dep.lines() {
            let Some((path, deps)) = line.split_once(':') else {
                continue;
            };
            let deps = deps.split_whitespace().map(str::to_owned).collect();
            index
                .modules
                .insert(module_name(path), (path.trim().to_owned(), deps));
        }
        index.builtin = builtin.lines().map(module_name).collect();
        for line in alias.lines() {
            let mut words = line.split_whitespace();
            if let (Some("alias"), Some(alias), Some(name)) =
                (words.next(), words.next(), words.next())
            {
                let on_bus = DEVICE_BUSES
                    .iter()
                    .any(|bus| alias.strip_prefix(bus).is_some_and(|a| a.starts_with(':')));
                if on_bus {
                    index
                        .devices
                        .entry(module_name(name))
                        .or_default()
                        .push(alias.to_owned());
                }
                // Wildcard aliases are hardware matches, not names a module asks for.
                if !alias.contains(['*', '?', '[']) {
                    index
                        .aliases
                        .entry(alias.replace('-', "_"))
                        .or_default()
                        .push(module_name(name));
                }
            }
        }
        for line in softdep.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("softdep") {
                continue;
            }
            let Some(name) = words.next() else { continue };
            let mut pre = Vec::new();
            let mut in_pre = false;
            for word in words {
                match word {
                    "pre:" => in_pre = true,
                    "post:" => in_pre = false,
                    w if in_pre => pre.push(w.to_owned()),
                    _ => {}
                }
            }
            index.soft_pre.insert(module_name(name), pre);
        }
        index
    }

    /// The modules `wanted` (names or aliases) need, each after its dependencies and the
    /// modules it asks for first (soft dependencies), each once.
    pub fn load_plan(&self, wanted: &[&str]) -> LoadPlan {
        let mut plan = LoadPlan::default();
        let mut seen = HashSet::new();
        for &name in wanted {
            let mut done = HashSet::new();
            let name = module_name(name);
            let mut paths = Vec::new();
            if self.builtin.contains(&name) {
                plan.builtin.push(name);
                continue;
            } else if self.modules.contains_key(&name) {
                if let Some(patterns) = self.devices.get(&name) {
                    plan.devices.push((name.clone(), patterns.clone()));
                }
                self.visit(&name, &mut done, &mut BTreeSet::new(), &mut paths);
            } else if let Some(targets) = self.aliases.get(&name) {
                for target in targets {
                    self.visit(target, &mut done, &mut BTreeSet::new(), &mut paths);
                }
            } else {
                plan.missing.push(name);
                continue;
            }
            for path in &paths {
                if seen.insert(path.clone()) {
                    plan.paths.push(path.clone());
                }
            }
            if !paths.is_empty() {
                plan.groups.push((name, paths));
            }
        }
        plan
    }

    /// Adds `name` to `out` after what it needs. `visiting` breaks cycles (a broken index).
    fn visit(
        &self,
        name: &str,
        done: &mut HashSet<String>,
        visiting: &mut BTreeSet<String>,
        out: &mut Vec<String>,
    ) {
        if done.contains(name) || !visiting.insert(name.to_owned()) {
            return;
        }
        // Soft dependencies first: names or aliases, any of which may be built in.
        for pre in self.soft_pre.get(name).into_iter().flatten() {
            let pre = module_name(pre);
            if self.modules.contains_key(&pre) {
                self.visit(&pre, done, visiting, out);
            } else if let Some(targets) = self.aliases.get(&pre) {
                for target in targets {
                    if self.modules.contains_key(target) {
                        self.visit(target, done, visiting, out);
                    }
                }
            }
        }
        if let Some((path, deps)) = self.modules.get(name) {
            for dep in deps {
                self.visit(&module_name(dep), done, visiting, out);
            }
            out.push(path.clone());
        }
        visiting.remove(name);
        done.insert(name.to_owned());
    }
}

/// Whether a device's `modalias` matches a driver's `pattern` (`*` any run, `?` any one
/// character, as modprobe's fnmatch reads them; `[` is taken literally).
pub fn modalias_matches(pattern: &str, modalias: &str) -> bool {
    let (p, m) = (pattern.as_bytes(), modalias.as_bytes());
    // Iterative glob: on a mismatch, retry from the last `*` one byte further.
    let (mut pi, mut mi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while mi < m.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, mi));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == m[mi] => {
                pi += 1;
                mi += 1;
            }
            _ => match star {
                Some((sp, sm)) => {
                    pi = sp + 1;
                    mi = sm + 1;
                    star = Some((sp, sm + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines from Debian bookworm's 6.1 kernel.
    const DEP: &str = "\
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/lib/crc16.ko:
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/crypto/crc32c_generic.ko:
kernel/arch/x86/crypto/crc32c-intel.ko.xz:
kernel/drivers/ata/ata_piix.ko: kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/ata/ahci.ko: kernel/drivers/ata/libahci.ko kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/ata/libahci.ko: kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/ata/libata.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_mod.ko: kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_common.ko:
kernel/drivers/net/virtio_net.ko.zst: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
";

    fn index() -> ModuleIndex {
        ModuleIndex::parse(
            DEP,
            "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_pci.ko\n",
            "alias crypto-crc32c crc32c_generic\nalias crypto-crc32c crc32c-intel\n\
             alias pci:v00008086d*sv* e1000\n",
            "softdep ext4 pre: crypto-crc32c\nsoftdep jbd2 pre: crypto-crc32c\n",
        )
    }

    #[test]
    fn names_follow_the_kernel() {
        assert_eq!(
            module_name("kernel/arch/x86/crypto/crc32c-intel.ko.xz"),
            "crc32c_intel"
        );
        assert_eq!(module_name("virtio_net.ko.zst"), "virtio_net");
        assert_eq!(module_name("ata-piix"), "ata_piix");
    }

    #[test]
    fn every_module_comes_after_what_it_needs_and_once() {
        let plan = index().load_plan(&[
            "ext4",
            "ata_piix",
            "ahci",
            "virtio_pci",
            "virtio-net",
            "nope",
        ]);
        let position = |p: &str| {
            plan.paths
                .iter()
                .position(|x| x.ends_with(p))
                .unwrap_or_else(|| panic!("{p} not in {:?}", plan.paths))
        };
        // Hard dependencies.
        assert!(position("/scsi_common.ko") < position("/scsi_mod.ko"));
        assert!(position("/scsi_mod.ko") < position("/libata.ko"));
        assert!(position("/libata.ko") < position("/ata_piix.ko"));
        assert!(position("/libahci.ko") < position("/ahci.ko"));
        assert!(position("/jbd2.ko") < position("/ext4.ko"));
        assert!(position("/failover.ko") < position("/net_failover.ko"));
        assert!(position("/net_failover.ko") < position("/virtio_net.ko.zst"));
        // Soft dependencies through an alias: crc32c before jbd2 and ext4.
        assert!(position("/crc32c_generic.ko") < position("/jbd2.ko"));
        assert!(position("/crc32c-intel.ko.xz") < position("/ext4.ko"));
        let unique: HashSet<_> = plan.paths.iter().collect();
        assert_eq!(unique.len(), plan.paths.len(), "{:?}", plan.paths);
        assert_eq!(plan.builtin, ["virtio_pci"]);
        assert_eq!(plan.missing, ["nope"]);
        // Groups: what each module asked for brings, each path once, in the same order.
        let names: Vec<&str> = plan.groups.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["ext4", "ata_piix", "ahci", "virtio_net"]);
        // Each group whole: ahci needs libata as much as ata_piix does.
        assert_eq!(
            plan.groups[2].1,
            [
                "kernel/drivers/scsi/scsi_common.ko",
                "kernel/drivers/scsi/scsi_mod.ko",
                "kernel/drivers/ata/libata.ko",
                "kernel/drivers/ata/libahci.ko",
                "kernel/drivers/ata/ahci.ko"
            ]
        );
        let mut flat: Vec<&String> = plan.groups.iter().flat_map(|(_, p)| p).collect();
        let mut once = HashSet::new();
        flat.retain(|p| once.insert(*p));
        assert_eq!(flat, plan.paths.iter().collect::<Vec<_>>());
        // Nothing that was not asked for (e1000's wildcard alias is not a name).
        assert_eq!(plan.paths.len(), 15, "{:?}", plan.paths);
        assert!(
            plan.devices.is_empty(),
            "only e1000 has device patterns, and was not asked for"
        );
    }

    #[test]
    fn drivers_match_devices_as_modprobe_does() {
        let e1000 = "pci:v00008086d0000100Esv*sd*bc*sc*i*";
        let device = "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00";
        assert!(modalias_matches(e1000, device));
        assert!(!modalias_matches(
            e1000,
            "pci:v00008086d0000100Fsv00001AF4sd00001100bc02sc00i00"
        ));
        assert!(modalias_matches(
            "virtio:d00000002v*",
            "virtio:d00000002v00001AF4"
        ));
        assert!(!modalias_matches(
            "virtio:d00000002v*",
            "virtio:d00000001v00001AF4"
        ));
        assert!(modalias_matches(
            "pci:v*d*sv*sd*bc01sc01i*",
            "pci:v00008086d00007010sv00001AF4sd00001100bc01sc01i80"
        ));
        assert!(modalias_matches("a?c", "abc") && !modalias_matches("a?c", "ac"));
        assert!(modalias_matches("*", "") && !modalias_matches("", "x"));

        let index = ModuleIndex::parse(
            "kernel/e1000.ko:\nkernel/ext4.ko:\n",
            "",
            &format!("alias {e1000} e1000\nalias fs-ext4 ext4\nalias acpi*:PNP0A03:* e1000\n"),
            "",
        );
        let plan = index.load_plan(&["e1000", "ext4"]);
        assert_eq!(plan.devices, [("e1000".to_owned(), vec![e1000.to_owned()])]);
    }

    #[test]
    fn a_cycle_in_a_broken_index_ends() {
        let index = ModuleIndex::parse("a.ko: b.ko\nb.ko: a.ko\n", "", "", "");
        let plan = index.load_plan(&["a"]);
        assert_eq!(plan.paths, ["b.ko", "a.ko"]);
    }

    #[test]
    fn a_kernel_with_everything_built_in_needs_nothing() {
        let index = ModuleIndex::parse("", "kernel/fs/ext4/ext4.ko\n", "", "");
        let plan = index.load_plan(&["ext4"]);
        assert!(plan.paths.is_empty());
        assert_eq!(plan.builtin, ["ext4"]);
    }
}
