//! OVA: an OVF 1.0 package in one tar (DMTF DSP0243 1.0, "OVF Packages" and "Distribution
//! as a Single File"), as VirtualBox and VMware import it: the descriptor `NAME.ovf` first,
//! the manifest `NAME.mf` right after it (OVF 1.0 requires that order), then the disk
//! `NAME-disk1.vmdk`, streamOptimized.
//!
//! The descriptor needs the VMDK's length and the manifest the digests of both, so the
//! archive is laid out before anything is written: the descriptor's length is fixed (the
//! length goes in a slot of fixed width, padded with spaces after the attribute) and so is
//! the manifest's (one `SHA256(NAME)= HEX` line per file). The VMDK is written first, at its
//! place, hashed as it goes; then the descriptor, the manifest and the headers before it.
//!
//! The hardware, chosen for what both importers accept (VirtualBox's ovfreader.cpp and
//! VMware's OVF import): CPUs (CIM resource type 3), memory in MiB (4, `byte * 2^20`), an
//! LSI Logic parallel SCSI controller (6; SATA, 20, is no common ground: VMware writes and
//! reads the sub-type `vmware.sata.ahci`, which older VirtualBox versions refuse, taking
//! only `AHCI`), the disk on it (17), an E1000 NIC (10), and for a disk that boots only through UEFI VMware's
//! `firmware=efi` setting. VirtualBox reads the firmware only from its own `vbox:Machine`
//! section, a whole machine configuration that d2l does not write: such a disk needs EFI
//! enabled after the import there (`VBoxManage modifyvm NAME --firmware efi`); a hybrid
//! disk boots with either.

use std::fmt::Write as _;
use std::fs::File;
use std::os::unix::fs::FileExt;

use d2l_blob::Digest;

use super::tar::{self, BLOCK, END};
use super::{BundleOptions, Hardware};
use crate::seq::SeqWriter;
use crate::{Error, Result, WriteOptions};

/// `ovf:format` of a streamOptimized VMDK (VMware's "Virtual Disk Format 1.1").
const VMDK_STREAM_FORMAT: &str =
    "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized";
/// VirtualSystemType: VMware's hardware version 10 (ESXi 5.5, Workstation 10: what every
/// current VMware product still runs) and VirtualBox's own family.
const SYSTEM_TYPE: &str = "vmx-10 virtualbox-2.2";
/// CIM operating system 100, "Linux 2.6.x 64-Bit" (CIM_OperatingSystem.OsType), which both
/// importers map to a 64-bit Linux.
const OS_ID: u32 = 100;
/// The deflate level of the VMDK's grains: zlib's default, as qemu-img writes them. On the
/// Debian fixture's disk, level 9 (what a streamOptimized `.vmdk` uses) made the OVA build
/// four times as long (45 s against 10 s on two busy cores) for 1% less.
const VMDK_LEVEL: u32 = 6;
/// Digits of the widest `ovf:size` (u64::MAX): the slot reserved for the VMDK's length.
const SIZE_SLOT: usize = 20;
/// The most CPUs an OVA asks for: VirtualBox's maximum.
pub const MAX_CPUS: u16 = 64;
/// The least memory an OVA asks for, in MiB.
pub const MIN_MEMORY_MIB: u64 = 16;

/// The file names inside the package, derived from the output's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    /// What the package is called: the output's name without `.ova`, made safe.
    pub base: String,
    pub ovf: String,
    pub manifest: String,
    pub disk: String,
}

impl Names {
    /// Names for an output file `file_name` (`linux.ova` -> `linux.ovf`, `linux.mf`,
    /// `linux-disk1.vmdk`). Characters other than ASCII letters, digits, `.`, `_` and `-`
    /// become `_` (they go into XML, the manifest's `SHA256(NAME)` and tar headers), and
    /// the name is cut to 64 bytes.
    pub fn new(file_name: &str) -> Names {
        // `.ova` in any case, as Bundle::from_path reads it.
        let stem = match file_name.len().checked_sub(".ova".len()) {
            Some(at)
                if file_name.is_char_boundary(at)
                    && file_name[at..].eq_ignore_ascii_case(".ova") =>
            {
                &file_name[..at]
            }
            _ => file_name,
        };
        let mut base: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        if base.is_empty() || base.starts_with('.') {
            base.insert_str(0, "d2l");
        }
        Names {
            ovf: format!("{base}.ovf"),
            manifest: format!("{base}.mf"),
            disk: format!("{base}-disk1.vmdk"),
            base,
        }
    }
}

/// `text` with XML's special characters escaped, for attributes and content alike.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The OVF descriptor for a disk of `capacity` bytes stored in a VMDK of `vmdk_bytes` (or
/// none yet: the slot is the same width), on a machine with `hardware` and, when `efi`, UEFI
/// firmware. Its length does not depend on `vmdk_bytes`.
pub(crate) fn descriptor(
    names: &Names,
    capacity: u64,
    vmdk_bytes: Option<u64>,
    hardware: &Hardware,
    efi: bool,
) -> String {
    let name = escape(&names.base);
    let disk = escape(&names.disk);
    let size = vmdk_bytes.map(|n| n.to_string()).unwrap_or_default();
    // Spaces after the attribute keep the length fixed; no leading zeros in the number.
    let slot = " ".repeat(SIZE_SLOT - size.len());
    let cpus = hardware.cpus;
    let memory = hardware.memory_mib;
    let mut x = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        x,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by d2l. -->
<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="{disk}" ovf:id="file1" ovf:size="{size}"{slot}/>
  </References>
  <DiskSection>
    <Info>The virtual disk</Info>
    <Disk ovf:capacity="{capacity}" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="{VMDK_STREAM_FORMAT}"/>
  </DiskSection>
  <NetworkSection>
    <Info>The network the machine is on</Info>
    <Network ovf:name="NAT">
      <Description>The network of the machine's one NIC (DHCP)</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="{name}">
    <Info>A virtual machine made by d2l from a container image</Info>
    <Name>{name}</Name>
    <OperatingSystemSection ovf:id="{OS_ID}">
      <Info>The guest operating system</Info>
      <Description>Linux 64-bit</Description>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>The virtual hardware</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>{name}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>{SYSTEM_TYPE}</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of virtual CPUs</rasd:Description>
        <rasd:ElementName>{cpus} virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>{cpus}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory size</rasd:Description>
        <rasd:ElementName>{memory} MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>{memory}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>SCSI controller</rasd:Description>
        <rasd:ElementName>SCSI controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>NAT</rasd:Connection>
        <rasd:Description>E1000 ethernet adapter on NAT</rasd:Description>
        <rasd:ElementName>Network adapter 1</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>E1000</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
"#
    );
    if efi {
        x.push_str(
            "      <vmw:Config ovf:required=\"false\" vmw:key=\"firmware\" vmw:value=\"efi\"/>\n",
        );
    }
    x.push_str("    </VirtualHardwareSection>\n  </VirtualSystem>\n</Envelope>\n");
    x
}

/// One manifest line: `SHA256(NAME)= HEX` (DSP0243 1.1 and VMware's ovftool; VirtualBox
/// reads it too).
fn manifest_line(name: &str, digest: Option<&Digest>) -> String {
    // A placeholder of the same length until the digest is known.
    let hex = digest.map_or_else(|| "0".repeat(64), |d| d.hex().to_owned());
    format!("SHA256({name})= {hex}\n")
}

/// The manifest of the descriptor and the disk.
fn manifest(names: &Names, ovf: Option<&Digest>, disk: Option<&Digest>) -> String {
    manifest_line(&names.ovf, ovf) + &manifest_line(&names.disk, disk)
}

/// Writes the OVA into `out` from the first `size` bytes of `scratch` (size a multiple of
/// 1 MiB, the disk's capacity). Returns the archive's length.
pub(super) fn write(out: &File, scratch: &File, size: u64, options: &BundleOptions) -> Result<u64> {
    let names = Names::new(&options.disk.file_name);
    let mtime = options.disk.timestamp;
    let hardware = &options.hardware;
    let ovf_len = descriptor(&names, size, None, hardware, options.uefi_only).len() as u64;
    let mf_len = manifest(&names, None, None).len() as u64;
    let disk_header_at = tar::member_span(ovf_len) + tar::member_span(mf_len);
    let disk_at = disk_header_at + BLOCK;

    // The VMDK first, at its place, hashed in order; it names itself in its descriptor.
    let mut vmdk_options: WriteOptions = options.disk.clone();
    vmdk_options.file_name = names.disk.clone();
    let mut writer = SeqWriter::hashing(out, disk_at);
    // The descriptor puts the disk on an LSI Logic controller; the VMDK says the same.
    crate::vmdk::write_stream(
        &mut writer,
        scratch,
        size,
        &vmdk_options,
        crate::vmdk::Adapter::LsiLogic,
        VMDK_LEVEL,
    )?;
    let (vmdk_len, vmdk_digest) = writer.finish()?;
    let vmdk_digest =
        vmdk_digest.ok_or_else(|| Error::Corrupt("the VMDK was not hashed".into()))?;
    let tail_at = disk_at + vmdk_len;
    let mut tail = tar::padding(vmdk_len).to_vec();
    tail.extend_from_slice(&END);
    put(out, &tail, tail_at)?;
    put(
        out,
        &tar::ustar_header(&names.disk, vmdk_len, mtime)?,
        disk_header_at,
    )?;

    // Then the descriptor, now with the VMDK's length in its slot, and the manifest.
    let ovf = descriptor(&names, size, Some(vmdk_len), hardware, options.uefi_only);
    if ovf.len() as u64 != ovf_len {
        return Err(Error::Corrupt(format!(
            "the OVF descriptor changed length ({ovf_len} -> {} bytes)",
            ovf.len()
        )));
    }
    let ovf_digest = Digest::sha256_of(ovf.as_bytes());
    let mf = manifest(&names, Some(&ovf_digest), Some(&vmdk_digest));
    let mut at = 0;
    for (name, text) in [(&names.ovf, &ovf), (&names.manifest, &mf)] {
        let mut member = tar::ustar_header(name, text.len() as u64, mtime)?.to_vec();
        member.extend_from_slice(text.as_bytes());
        member.extend_from_slice(tar::padding(text.len() as u64));
        put(out, &member, at)?;
        at += member.len() as u64;
    }
    Ok(tail_at + tail.len() as u64)
}

/// Writes `bytes` at `offset` of the archive.
fn put(out: &File, bytes: &[u8], offset: u64) -> Result<()> {
    out.write_all_at(bytes, offset)
        .map_err(Error::output("writing the OVA", offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hardware() -> Hardware {
        Hardware {
            cpus: 2,
            memory_mib: 1024,
        }
    }

    #[test]
    fn names_follow_the_output_and_are_made_safe() {
        let n = Names::new("linux.ova");
        assert_eq!(
            (
                n.base.as_str(),
                n.ovf.as_str(),
                n.manifest.as_str(),
                n.disk.as_str()
            ),
            ("linux", "linux.ovf", "linux.mf", "linux-disk1.vmdk")
        );
        assert_eq!(
            Names::new("my vm <1>&\"quoted\".ova").base,
            "my_vm__1___quoted_"
        );
        assert_eq!(Names::new(".ova").base, "d2l");
        assert_eq!(Names::new("VM.Ova").disk, "VM-disk1.vmdk");
        assert_eq!(Names::new(".hidden.ova").base, "d2l.hidden");
        assert_eq!(Names::new("é.ova").base, "_");
        assert_eq!(Names::new(&"x".repeat(200)).base.len(), 64);
    }

    #[test]
    fn escaping() {
        assert_eq!(escape(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(escape("plain-name_1.0"), "plain-name_1.0");
    }

    #[test]
    fn the_descriptor_keeps_its_length_whatever_the_vmdk_size() {
        let names = Names::new("linux.ova");
        let empty = descriptor(&names, 2 << 30, None, &hardware(), false);
        for size in [0, 7, 123_456_789, u64::MAX] {
            let text = descriptor(&names, 2 << 30, Some(size), &hardware(), false);
            assert_eq!(text.len(), empty.len(), "{size}");
            assert!(
                text.contains(&format!("ovf:size=\"{size}\"")),
                "no leading zeros: {size}"
            );
        }
        let text = descriptor(&names, 2 << 30, Some(42), &hardware(), false);
        assert!(
            text.contains(r#"ovf:size="42"                  />"#),
            "{text}"
        );
    }

    #[test]
    fn the_descriptor_holds_what_dsp0243_requires() {
        let names = Names::new("a&b.ova");
        let text = descriptor(&names, 3 << 30, Some(1), &hardware(), false);
        for needle in [
            r#"<Envelope ovf:version="1.0""#,
            r#"xmlns="http://schemas.dmtf.org/ovf/envelope/1""#,
            r#"<File ovf:href="a_b-disk1.vmdk" ovf:id="file1""#,
            r#"<Disk ovf:capacity="3221225472" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>"#,
            r#"<VirtualSystem ovf:id="a_b">"#,
            r#"<OperatingSystemSection ovf:id="100">"#,
            "<rasd:ResourceType>3</rasd:ResourceType>\n        <rasd:VirtualQuantity>2</rasd:VirtualQuantity>",
            "<rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>",
            "<rasd:VirtualQuantity>1024</rasd:VirtualQuantity>",
            "<rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>\n        <rasd:ResourceType>6</rasd:ResourceType>",
            "<rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>",
            "<rasd:Parent>3</rasd:Parent>",
            "<rasd:ResourceSubType>E1000</rasd:ResourceSubType>",
        ] {
            assert!(text.contains(needle), "{needle}\n{text}");
        }
        // Every section has its Info (DSP0243: Info is required in each).
        assert_eq!(text.matches("<Info>").count(), 5);
        assert!(!text.contains("firmware"));
        let efi = descriptor(&names, 3 << 30, Some(1), &hardware(), true);
        assert!(efi
            .contains(r#"<vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>"#));
    }

    #[test]
    fn manifest_lines_have_a_fixed_length() {
        let names = Names::new("linux.ova");
        let placeholder = manifest(&names, None, None);
        let digest = Digest::sha256_of(b"");
        let real = manifest(&names, Some(&digest), Some(&digest));
        assert_eq!(placeholder.len(), real.len());
        assert_eq!(
            real.lines().next().unwrap(),
            "SHA256(linux.ovf)= e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(real.ends_with("SHA256(linux-disk1.vmdk)= e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"));
    }
}
