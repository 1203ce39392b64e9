//! Where a filesystem's bytes go: a virtual disk, addressed by byte offset.
//!
//! A raw image is a [`File`]; other container formats (qcow2, VDI, VMDK, VHD) implement
//! [`VirtualDisk`] over their own file layout, so the filesystem, the boot code and the
//! partition table are written once, straight into the format the user asked for.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// A disk image being written. Offsets are the guest's (virtual) byte offsets; what was never
/// written reads as zeros. Writes may come from several threads at once, to disjoint ranges.
pub trait VirtualDisk: Sync {
    /// Writes all of `bytes` at `offset`.
    fn write_at(&self, bytes: &[u8], offset: u64) -> io::Result<()>;

    /// Reads exactly `buf.len()` bytes at `offset`: what was written, zeros elsewhere.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    /// Makes a range read as zeros again (data that turned out not to be needed). Formats
    /// that cannot free part of their storage write zeros instead.
    fn discard(&self, offset: u64, len: u64) -> io::Result<()>;

    /// The disk's virtual size so far.
    fn virtual_size(&self) -> io::Result<u64>;

    /// Makes the disk at least `len` bytes long (its virtual size).
    fn grow_to(&self, len: u64) -> io::Result<()>;

    /// Copies `len` bytes from `src` at `src_offset` to `offset`. Formats whose storage is a
    /// plain file region can let the kernel copy (`copy_file_range`); the default reads and
    /// writes through a buffer.
    fn copy_from(&self, src: &File, src_offset: u64, len: u64, offset: u64) -> io::Result<()> {
        copy_through_buffer(self, src, src_offset, len, offset)
    }
}

/// A raw disk image: virtual offsets are file offsets, unwritten ranges stay holes.
impl VirtualDisk for File {
    fn write_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        self.write_all_at(bytes, offset)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        // Past the end of the file is a hole that was never written.
        let len = self.metadata()?.len();
        let available = len.saturating_sub(offset).min(buf.len() as u64) as usize;
        self.read_exact_at(&mut buf[..available], offset)?;
        buf[available..].fill(0);
        Ok(())
    }

    fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        use rustix::fs::{fallocate, FallocateFlags};
        match fallocate(
            self,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            offset,
            len,
        ) {
            Ok(()) => Ok(()),
            // A filesystem without hole punching: zeros read the same.
            Err(rustix::io::Errno::OPNOTSUPP) => write_zeros(self, offset, len),
            Err(e) => Err(e.into()),
        }
    }

    fn virtual_size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn grow_to(&self, len: u64) -> io::Result<()> {
        if self.metadata()?.len() < len {
            self.set_len(len)?;
        }
        Ok(())
    }

    fn copy_from(&self, src: &File, src_offset: u64, len: u64, offset: u64) -> io::Result<()> {
        let done = copy_in_kernel(src, src_offset, len, self, offset)?;
        copy_through_buffer(self, src, src_offset + done, len - done, offset + done)
    }
}

/// Copies up to `len` bytes from `src` at `offset` to `out` at `out_offset` inside the kernel
/// (`copy_file_range`). Returns the bytes copied, which is less than `len` only when the
/// kernel cannot copy between these files (the caller copies the rest itself).
pub fn copy_in_kernel(
    src: &File,
    offset: u64,
    len: u64,
    out: &File,
    out_offset: u64,
) -> io::Result<u64> {
    let mut done = 0u64;
    while done < len {
        let mut from = offset + done;
        let mut to = out_offset + done;
        let want = usize::try_from(len - done)
            .unwrap_or(usize::MAX)
            .min(1 << 30);
        match rustix::fs::copy_file_range(src, Some(&mut from), out, Some(&mut to), want) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => done += n as u64,
            Err(rustix::io::Errno::INTR) => {}
            // Not supported between these files (e.g. across filesystems on old kernels).
            Err(
                rustix::io::Errno::XDEV
                | rustix::io::Errno::NOSYS
                | rustix::io::Errno::INVAL
                | rustix::io::Errno::OPNOTSUPP,
            ) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

/// Copies through a user-space buffer.
fn copy_through_buffer<D: VirtualDisk + ?Sized>(
    disk: &D,
    src: &File,
    src_offset: u64,
    len: u64,
    offset: u64,
) -> io::Result<()> {
    let mut buf = vec![0u8; len.min(1 << 20) as usize];
    let mut done = 0u64;
    while done < len {
        let n = buf.len().min((len - done) as usize);
        src.read_exact_at(&mut buf[..n], src_offset + done)?;
        disk.write_at(&buf[..n], offset + done)?;
        done += n as u64;
    }
    Ok(())
}

/// Writes `len` zero bytes at `offset`, for formats or filesystems that cannot free a range.
pub fn write_zeros<D: VirtualDisk + ?Sized>(disk: &D, offset: u64, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; len.min(1 << 20) as usize];
    let mut done = 0u64;
    while done < len {
        let n = zeros.len().min((len - done) as usize);
        disk.write_at(&zeros[..n], offset + done)?;
        done += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_file_reads_back_zeros_past_its_end_and_after_discard() {
        let file = tempfile::tempfile().unwrap();
        file.grow_to(8192).unwrap();
        VirtualDisk::write_at(&file, &[7u8; 8192], 0).unwrap();
        file.discard(0, 4096).unwrap();
        let mut buf = [1u8; 12288];
        VirtualDisk::read_at(&file, &mut buf, 0).unwrap();
        assert!(buf[..4096].iter().all(|&b| b == 0));
        assert!(buf[4096..8192].iter().all(|&b| b == 7));
        assert!(buf[8192..].iter().all(|&b| b == 0));
    }

    #[test]
    fn raw_file_copies_from_another_file() {
        let src = tempfile::tempfile().unwrap();
        src.write_all_at(b"0123456789", 0).unwrap();
        let disk = tempfile::tempfile().unwrap();
        disk.copy_from(&src, 2, 5, 100).unwrap();
        let mut buf = [0u8; 5];
        VirtualDisk::read_at(&disk, &mut buf, 100).unwrap();
        assert_eq!(&buf, b"23456");
    }
}
