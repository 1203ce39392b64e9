//! What a planned disk's table holds, partition by partition, as the writers write it: for
//! reports (`d2l build --json`), from the same constants the writers use.

use crate::gpt::root_type;
use crate::layout::{DiskLayout, TableKind};
use crate::mbr::{TYPE_EFI_SYSTEM, TYPE_LINUX};
use crate::DiskIds;

/// One partition of a planned disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Its number in the table (1-based, as Linux names it: /dev/vda1).
    pub number: u32,
    /// `esp` or `root`.
    pub role: &'static str,
    /// Offset on the disk, in bytes.
    pub start: u64,
    /// Length in bytes.
    pub size: u64,
    /// The type: the MBR type byte as `0x83`, or the GPT type GUID, upper-case as
    /// `sfdisk` prints it.
    pub type_id: String,
    /// The GPT unique partition GUID (none in an MBR table).
    pub uuid: Option<String>,
}

impl DiskLayout {
    /// The partitions `write_partition_table` writes for this layout and `ids`, in table
    /// order.
    pub fn partitions(&self, ids: &DiskIds) -> Vec<PartitionInfo> {
        let guid = |bytes: [u8; 16]| uuid::Uuid::from_bytes(bytes).hyphenated().to_string();
        let (esp_type, root_type, esp_uuid, root_uuid) = match self.kind {
            TableKind::Mbr => (
                format!("0x{TYPE_EFI_SYSTEM:02x}"),
                format!("0x{TYPE_LINUX:02x}"),
                None,
                None,
            ),
            TableKind::Gpt => (
                gpt::partition_types::EFI.guid.to_string().to_uppercase(),
                root_type(self.root_arch).guid.to_string().to_uppercase(),
                Some(guid(ids.esp_guid)),
                Some(guid(ids.partition_guid)),
            ),
        };
        let mut partitions = Vec::new();
        if let Some(esp) = self.esp {
            partitions.push(PartitionInfo {
                number: 1,
                role: "esp",
                start: esp.start,
                size: esp.bytes,
                type_id: esp_type,
                uuid: esp_uuid,
            });
        }
        partitions.push(PartitionInfo {
            number: partitions.len() as u32 + 1,
            role: "root",
            start: self.partition_start,
            size: self.partition_bytes,
            type_id: root_type,
            uuid: root_uuid,
        });
        partitions
    }
}
