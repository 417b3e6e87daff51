//! Formatting into a fixed stack buffer, for messages written from inside the
//! allocator where `format!` would allocate. Output past the capacity is dropped.
#![forbid(unsafe_code)]

/// A fixed-capacity byte buffer with a few append helpers.
pub struct Buf<const N: usize> {
    data: [u8; N],
    len: usize,
}

impl<const N: usize> Default for Buf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Buf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        Buf {
            data: [0; N],
            len: 0,
        }
    }
    /// Appends raw bytes, truncating at capacity.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let n = b.len().min(N - self.len);
        self.data[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
        self
    }
    /// Appends a string.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }
    /// Appends an unsigned decimal number.
    pub fn num(&mut self, mut v: u64) -> &mut Self {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.bytes(&tmp[i..])
    }
    /// Appends `0x` and a hexadecimal number.
    pub fn hex(&mut self, mut v: u64) -> &mut Self {
        let mut tmp = [0u8; 16];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b"0123456789abcdef"[(v & 15) as usize];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        self.str("0x");
        self.bytes(&tmp[i..])
    }
    /// Appends a byte count in a readable unit (B, KiB, MiB, GiB) with one decimal.
    pub fn size(&mut self, v: u64) -> &mut Self {
        const UNITS: [&str; 4] = [" B", " KiB", " MiB", " GiB"];
        let mut unit = 0;
        let mut scaled = v * 10;
        while scaled >= 10 * 1024 && unit < 3 {
            scaled /= 1024;
            unit += 1;
        }
        self.num(scaled / 10);
        if unit > 0 {
            self.str(".");
            self.num(scaled % 10);
        }
        self.str(UNITS[unit])
    }
    /// Pads with spaces to `width` bytes since `start`.
    pub fn pad_to(&mut self, start: usize, width: usize) -> &mut Self {
        while self.len < start + width && self.len < N {
            self.bytes(b" ");
        }
        self
    }
    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True if nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The written bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }
    /// The written bytes as text (only ASCII is ever written through `str`/`num`).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
    /// Forgets the contents.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers_and_sizes() {
        let mut b: Buf<64> = Buf::new();
        b.num(0)
            .str(" ")
            .num(1234567)
            .str(" ")
            .hex(0xdead)
            .str(" ")
            .size(1536)
            .str(" ")
            .size(100);
        assert_eq!(b.as_str(), "0 1234567 0xdead 1.5 KiB 100 B");
    }

    #[test]
    fn truncates_at_capacity() {
        let mut b: Buf<4> = Buf::new();
        b.str("hello");
        assert_eq!(b.as_str(), "hell");
    }
}
