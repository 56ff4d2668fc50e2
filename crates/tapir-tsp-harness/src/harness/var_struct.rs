//! TAPI's variable-size structures: a fixed part whose first three DWORDs are
//! dwTotalSize/dwNeededSize/dwUsedSize, followed by strings found by offset and size.

use std::marker::PhantomData;
use std::mem::size_of;

/// A buffer of `total` bytes holding a `T` (one of windows-sys's packed TAPI structs).
pub struct VarStruct<T> {
    // u64 words: 8-byte aligned, more than the packed structs need.
    words: Vec<u64>,
    total: u32,
    kind: PhantomData<T>,
}

impl<T: Copy> VarStruct<T> {
    /// A zeroed buffer of `total` bytes with dwTotalSize set, as TAPISRV passes them.
    pub fn with_total_size(total: u32) -> VarStruct<T> {
        let bytes = (total as usize).max(size_of::<T>()).max(12);
        let mut buffer = VarStruct {
            words: vec![0; bytes.div_ceil(8)],
            total,
            kind: PhantomData,
        };
        buffer.write_u32(0, total);
        buffer
    }

    pub fn as_mut_ptr(&mut self) -> *mut T {
        self.words.as_mut_ptr().cast()
    }

    /// The fixed part, copied out (fields of packed structs must be read by value).
    pub fn fixed(&self) -> T {
        // SAFETY: the buffer holds at least size_of::<T>() bytes, and T is plain old data.
        unsafe { self.words.as_ptr().cast::<T>().read_unaligned() }
    }

    pub fn needed_size(&self) -> u32 {
        self.read_u32(4)
    }

    pub fn used_size(&self) -> u32 {
        self.read_u32(8)
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: a u64 slice viewed as bytes, same lifetime, no padding concerns.
        unsafe {
            std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.words.len() * 8)
        }
    }

    fn read_u32(&self, at: usize) -> u32 {
        let b = &self.bytes()[at..at + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    fn write_u32(&mut self, at: usize, value: u32) {
        // SAFETY: `at + 4` is within the buffer (callers pass offsets inside the header).
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(
                self.words.as_mut_ptr().cast::<u8>(),
                self.words.len() * 8,
            )
        };
        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }

    /// A UTF-16 string the provider placed at `offset` with `size` bytes (its terminating NUL,
    /// if any, dropped); `what` names the field for the error.
    pub fn utf16(&self, what: &str, offset: u32, size: u32) -> Result<String, String> {
        if size == 0 {
            return Ok(String::new());
        }
        let (start, end) = (offset as usize, offset as usize + size as usize);
        if offset < size_of::<T>() as u32 || end > self.total as usize || !size.is_multiple_of(2) {
            return Err(format!(
                "{what}: offset {offset} size {size} is not a UTF-16 string inside the {} bytes after the fixed part ({} bytes)",
                self.total,
                size_of::<T>()
            ));
        }
        let units: Vec<u16> = self.bytes()[start..end]
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
            .collect();
        let text = units.split(|unit| *unit == 0).next().unwrap_or(&[]);
        String::from_utf16(text).map_err(|e| format!("{what}: not UTF-16: {e}"))
    }
}
