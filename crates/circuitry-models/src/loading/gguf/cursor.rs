//! A bounds-checked little-endian reader over the bytes of a GGUF header. Every read that would run
//! past the end of the file is an error that says what was being read and where, never a panic.

/// Reads primitive values from a byte slice, front to back.
pub(super) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    /// Offset of the next byte to read.
    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left after the current position.
    pub(super) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// The next `n` bytes; `what` names the value for the error message.
    pub(super) fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<&'a [u8], String> {
        if n > self.remaining() {
            return Err(format!(
                "file ends at byte {} while reading {} at byte {} ({n} bytes needed)",
                self.bytes.len(),
                what(),
                self.pos
            ));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(super) fn u8(&mut self, what: &dyn Fn() -> String) -> Result<u8, String> {
        Ok(self.array::<1>(what)?[0])
    }
    pub(super) fn u16(&mut self, what: &dyn Fn() -> String) -> Result<u16, String> {
        self.array(what).map(u16::from_le_bytes)
    }
    pub(super) fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, String> {
        self.array(what).map(u32::from_le_bytes)
    }
    pub(super) fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, String> {
        self.array(what).map(u64::from_le_bytes)
    }
    pub(super) fn f32(&mut self, what: &dyn Fn() -> String) -> Result<f32, String> {
        self.array(what).map(f32::from_le_bytes)
    }
    pub(super) fn f64(&mut self, what: &dyn Fn() -> String) -> Result<f64, String> {
        self.array(what).map(f64::from_le_bytes)
    }

    /// A GGUF string: a u64 byte length, then UTF-8 bytes (invalid sequences are replaced, as
    /// some vocabularies store raw byte tokens).
    pub(super) fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, String> {
        let len = self.u64(what)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| n <= self.remaining())
            .ok_or_else(|| {
                format!(
                    "{} at byte {} claims {len} bytes, but only {} remain in the file",
                    what(),
                    self.pos - 8,
                    self.remaining()
                )
            })?;
        let bytes = self.take(len, what)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }
}
