//! The unsynced state of one file: the pages written since its last
//! fsync, its size as the writer sees it, and where a truncation cut it.
//! Kept apart from FUSE so the page arithmetic is tested on its own; a
//! crash simply forgets an `Overlay`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Size of a page of unsynced data.
pub const PAGE_BYTES: u64 = 4096;

/// What a file holds beyond its backing file, until fsync.
#[derive(Debug)]
pub struct Overlay {
    pages: BTreeMap<u64, Vec<u8>>,
    /// The file's size as readers see it.
    size_bytes: u64,
    /// Backing bytes at or past this offset were cut by a truncation and
    /// read as zeros.
    cut_at: u64,
}

impl Overlay {
    /// No unsynced change yet to a backing file of `size_bytes`.
    pub fn new(size_bytes: u64) -> Self {
        Overlay {
            pages: BTreeMap::new(),
            size_bytes,
            cut_at: size_bytes,
        }
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Bytes held in memory only.
    pub fn unsynced_bytes(&self) -> u64 {
        self.pages.len() as u64 * PAGE_BYTES
    }

    /// One page as readers see it: unsynced, or from the backing file.
    fn page(&self, backing: &File, index: u64) -> io::Result<Vec<u8>> {
        if let Some(page) = self.pages.get(&index) {
            return Ok(page.clone());
        }
        let mut page = vec![0; PAGE_BYTES as usize];
        let start = index * PAGE_BYTES;
        let readable = self.cut_at.min(self.size_bytes).saturating_sub(start);
        let wanted = readable.min(PAGE_BYTES) as usize;
        let mut filled = 0;
        while filled < wanted {
            let n = backing.read_at(&mut page[filled..wanted], start + filled as u64)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        Ok(page)
    }

    /// Reads up to `length` bytes at `offset`.
    pub fn read(&self, backing: &File, offset: u64, length: u64) -> io::Result<Vec<u8>> {
        let end = (offset + length).min(self.size_bytes);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut at = offset;
        while at < end {
            let index = at / PAGE_BYTES;
            let page = self.page(backing, index)?;
            let from = (at - index * PAGE_BYTES) as usize;
            let to = ((end - index * PAGE_BYTES).min(PAGE_BYTES)) as usize;
            out.extend_from_slice(&page[from..to]);
            at = index * PAGE_BYTES + to as u64;
        }
        Ok(out)
    }

    /// Writes `data` at `offset` into memory.
    pub fn write(&mut self, backing: &File, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset + data.len() as u64;
        let mut at = offset;
        while at < end {
            let index = at / PAGE_BYTES;
            let mut page = self.page(backing, index)?;
            let from = (at - index * PAGE_BYTES) as usize;
            let to = ((end - index * PAGE_BYTES).min(PAGE_BYTES)) as usize;
            let source = (at - offset) as usize;
            page[from..to].copy_from_slice(&data[source..source + (to - from)]);
            self.pages.insert(index, page);
            at = index * PAGE_BYTES + to as u64;
        }
        self.size_bytes = self.size_bytes.max(end);
        Ok(())
    }

    /// Sets the size (truncate or extend with zeros).
    pub fn set_size(&mut self, size_bytes: u64) {
        if size_bytes < self.size_bytes {
            let first_gone = size_bytes.div_ceil(PAGE_BYTES);
            self.pages.split_off(&first_gone);
            if !size_bytes.is_multiple_of(PAGE_BYTES) {
                if let Some(page) = self.pages.get_mut(&(size_bytes / PAGE_BYTES)) {
                    page[(size_bytes % PAGE_BYTES) as usize..].fill(0);
                }
            }
            self.cut_at = self.cut_at.min(size_bytes);
        }
        self.size_bytes = size_bytes;
    }

    /// Makes the backing file hold what readers see, and syncs it.
    pub fn write_back(&self, backing: &File) -> io::Result<()> {
        if self.cut_at < backing.metadata()?.len() {
            backing.set_len(self.cut_at)?;
        }
        for (index, page) in &self.pages {
            let start = index * PAGE_BYTES;
            let length = (self.size_bytes - start).min(PAGE_BYTES) as usize;
            backing.write_all_at(&page[..length], start)?;
        }
        backing.set_len(self.size_bytes)?;
        backing.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backing(bytes: &[u8]) -> (tempfile::NamedTempFile, File) {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().write_all_at(bytes, 0).unwrap();
        let handle = file.reopen().unwrap();
        (file, handle)
    }

    #[test]
    fn unsynced_writes_are_read_back_and_only_write_back_reaches_the_file() {
        let (_keep, file) = backing(&[7; 5000]);
        let mut overlay = Overlay::new(5000);
        overlay.write(&file, 4090, b"abcdefghijkl").unwrap();
        overlay.write(&file, 9000, b"end").unwrap();
        assert_eq!(overlay.size_bytes(), 9003);
        assert_eq!(
            overlay.read(&file, 4088, 16).unwrap(),
            b"\x07\x07abcdefghijkl\x07\x07"
        );
        assert_eq!(overlay.read(&file, 8998, 100).unwrap(), b"\0\0end");
        assert_eq!(
            file.metadata().unwrap().len(),
            5000,
            "nothing written back yet"
        );
        overlay.write_back(&file).unwrap();
        let mut all = vec![0; 9003];
        file.read_exact_at(&mut all, 0).unwrap();
        assert_eq!(&all[4090..4102], b"abcdefghijkl");
        assert_eq!(&all[4102..5000], &[7; 898][..]);
        assert_eq!(&all[5000..9000], &[0; 4000][..]);
        assert_eq!(&all[9000..], b"end");
    }

    #[test]
    fn a_truncation_hides_the_backing_bytes_it_cut() {
        let (_keep, file) = backing(&[1; 10000]);
        let mut overlay = Overlay::new(10000);
        overlay.set_size(100);
        overlay.set_size(8192);
        assert_eq!(overlay.read(&file, 98, 4).unwrap(), vec![1, 1, 0, 0]);
        assert_eq!(overlay.read(&file, 8000, 500).unwrap(), vec![0; 192]);
        overlay.write_back(&file).unwrap();
        let mut all = vec![9; 8192];
        file.read_exact_at(&mut all, 0).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 8192);
        assert!(all[..100].iter().all(|b| *b == 1) && all[100..].iter().all(|b| *b == 0));
    }
}
