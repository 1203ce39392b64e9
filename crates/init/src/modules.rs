//! Which kernel modules a machine needs and the order to load them, from the kernel's own
//! index files: `modules.dep` (each module's path and the modules it needs),
//! `modules.builtin` (what is compiled in: nothing to load), `modules.alias` and
//! `modules.softdep` (`softdep ext4 pre: crypto-crc32c`: what a module asks for by name at
//! run time, through modprobe, which an initramfs without modprobe must load first).

use std::collections::{BTreeMap, BTreeSet, HashSet};

/// What a machine made by d2l needs to reach its root disk and network: disk controllers
/// (QEMU's IDE and virtio, SATA for VirtualBox and VMware, NVMe for clouds), SCSI disks,
/// ext4, and the usual network cards (virtio, e1000 and e1000e, VMware's vmxnet3).
pub const MACHINE_MODULES: &[&str] = &[
    "ata_piix",
    "ata_generic",
    "ahci",
    "sd_mod",
    "sr_mod",
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "nvme",
    "vmw_pvscsi",
    "mptspi",
    "ext4",
    "virtio_net",
    "e1000",
    "e1000e",
    "vmxnet3",
];

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
}

/// The modules to load, in order, and what was asked for but is not there.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LoadPlan {
    /// Paths relative to `/lib/modules/VERSION`, each after everything it needs.
    pub paths: Vec<String>,
    /// Names asked for that the kernel has built in.
    pub builtin: Vec<String>,
    /// Names asked for that the kernel has neither as a module nor built in.
    pub missing: Vec<String>,
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
        let mut done = HashSet::new();
        for &name in wanted {
            let name = module_name(name);
            if self.builtin.contains(&name) {
                plan.builtin.push(name);
            } else if self.modules.contains_key(&name) {
                self.visit(&name, &mut done, &mut BTreeSet::new(), &mut plan.paths);
            } else if let Some(targets) = self.aliases.get(&name) {
                for target in targets {
                    self.visit(target, &mut done, &mut BTreeSet::new(), &mut plan.paths);
                }
            } else {
                plan.missing.push(name);
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
        // Nothing that was not asked for (e1000's wildcard alias is not a name).
        assert_eq!(plan.paths.len(), 15, "{:?}", plan.paths);
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
