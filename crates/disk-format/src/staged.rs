//! The formats that need whole clusters in disk order (compressed qcow2, streamOptimized
//! VMDK) and the archives of `bundle/`: writes go to a sparse raw scratch file next to the
//! output (unlinked at creation), and `finish` writes the output from it, front to back
//! (deflating on all cores where the format compresses).

use std::fs::File;
use std::io;

use d2l_disk::VirtualDisk;

use crate::bundle::BundleOptions;
use crate::seq::SeqWriter;
use crate::{Error, ImageWriter, Result, WriteOptions, MIB};

/// The format the scratch file becomes.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// qcow2 with deflated clusters.
    CompressedQcow2,
    /// VMDK streamOptimized.
    StreamVmdk,
    /// An archive holding the disk.
    Bundle(Box<BundleOptions>),
}

/// A disk written to a scratch file first.
#[derive(Debug)]
pub(crate) struct Staged {
    out: File,
    scratch: File,
    target: Target,
    options: WriteOptions,
}

impl Staged {
    pub fn new(out: File, target: Target, options: &WriteOptions) -> Result<Self> {
        let scratch = match &options.scratch_dir {
            Some(dir) => tempfile::tempfile_in(dir),
            None => tempfile::tempfile(),
        }
        .map_err(Error::output("creating a scratch file", 0))?;
        Ok(Staged {
            out,
            scratch,
            target,
            options: options.clone(),
        })
    }
}

impl VirtualDisk for Staged {
    fn write_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        VirtualDisk::write_at(&self.scratch, bytes, offset)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        VirtualDisk::read_at(&self.scratch, buf, offset)
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        self.scratch.discard(offset, len)
    }

    fn virtual_size(&self) -> io::Result<u64> {
        self.scratch.virtual_size()
    }

    fn grow_to(&self, len: u64) -> io::Result<()> {
        self.scratch.grow_to(len)
    }

    fn copy_from(&self, src: &File, src_offset: u64, len: u64, offset: u64) -> io::Result<()> {
        self.scratch.copy_from(src, src_offset, len, offset)
    }
}

impl ImageWriter for Staged {
    fn as_disk(&self) -> &dyn VirtualDisk {
        self
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let len = self
            .scratch
            .virtual_size()
            .map_err(Error::output("sizing the scratch file", 0))?;
        let size = len.next_multiple_of(MIB);
        match &self.target {
            Target::CompressedQcow2 => {
                crate::qcow2::write_compressed(&self.out, &self.scratch, size)
            }
            Target::StreamVmdk => {
                let mut writer = SeqWriter::new(&self.out, 0);
                crate::vmdk::write_stream(
                    &mut writer,
                    &self.scratch,
                    size,
                    &self.options,
                    crate::vmdk::Adapter::Ide,
                    crate::compress::LEVEL,
                )?;
                let (end, _) = writer.finish()?;
                self.out
                    .set_len(end)
                    .map_err(Error::output("sizing the image", end))
            }
            // The bundle rounds the size as its importer wants.
            Target::Bundle(options) => crate::bundle::write(&self.out, &self.scratch, len, options),
        }
    }
}
