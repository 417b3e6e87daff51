//! Reading the kernel's view of a process: `/proc/PID/{maps,smaps,status,pagemap}`.
//!
//! Everything here is plain parsing of text the kernel writes, plus one classifier that names
//! each mapping the way the textbook picture of a process does (text, data, bss, heap,
//! mappings, stack, vdso). Errors are turned into one-line messages that say which process and
//! why (gone, or not ours to read).

use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::Error;

/// One line of `/proc/PID/maps`, with the `smaps` counters for it when they were read.
#[derive(Clone, Debug, Default)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    /// `rwxp` as the kernel prints it.
    pub perms: String,
    /// Offset into the mapped file.
    pub offset: u64,
    /// File path, `[heap]`, `[stack]`, `[vdso]`, ... or empty for anonymous memory.
    pub path: String,
    pub rss_bytes: u64,
    pub pss_bytes: u64,
    pub private_dirty_bytes: u64,
    pub swap_bytes: u64,
    pub lazy_free_bytes: u64,
    pub anon_huge_bytes: u64,
}

impl Mapping {
    pub fn len_bytes(&self) -> u64 {
        self.end - self.start
    }
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }
    pub fn is_exec(&self) -> bool {
        self.perms.as_bytes().get(2) == Some(&b'x')
    }
    pub fn is_write(&self) -> bool {
        self.perms.as_bytes().get(1) == Some(&b'w')
    }
    pub fn is_file(&self) -> bool {
        self.path.starts_with('/')
    }
}

/// What a mapping is, in the words of the classic picture of a process's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Machine code of the program itself.
    Text,
    /// Read-only data of the program (constants, relocation tables).
    RoData,
    /// Initialised writable data of the program.
    Data,
    /// Zero-initialised data: the anonymous mapping right after the program's data.
    Bss,
    /// The `brk` heap.
    Heap,
    /// Shared libraries and the dynamic loader.
    Library,
    /// oxalloc's own segments (known from its statistics mapping).
    Oxalloc,
    /// Other anonymous mappings (`mmap`): other allocators' arenas, thread stacks, JIT, ...
    Anon,
    /// Other file mappings (data files, locale archives, ...).
    File,
    /// The main thread's stack.
    Stack,
    /// `[vdso]`, `[vvar]`, `[vsyscall]`: kernel code and data mapped into every process.
    Kernel,
    /// Inaccessible (`---p`) reservations and guard pages.
    Guard,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::Text,
        Kind::RoData,
        Kind::Data,
        Kind::Bss,
        Kind::Heap,
        Kind::Library,
        Kind::Oxalloc,
        Kind::Anon,
        Kind::File,
        Kind::Stack,
        Kind::Kernel,
        Kind::Guard,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::RoData => "rodata",
            Kind::Data => "data",
            Kind::Bss => "bss",
            Kind::Heap => "heap",
            Kind::Library => "library",
            Kind::Oxalloc => "oxalloc",
            Kind::Anon => "mmap",
            Kind::File => "file",
            Kind::Stack => "stack",
            Kind::Kernel => "kernel",
            Kind::Guard => "guard",
        }
    }

    /// Colour used by the SVG picture and, approximated, by the terminal.
    pub fn color(self) -> &'static str {
        match self {
            Kind::Text => "#d9534f",
            Kind::RoData => "#f0ad4e",
            Kind::Data => "#5cb85c",
            Kind::Bss => "#8fd18f",
            Kind::Heap => "#337ab7",
            Kind::Library => "#9b59b6",
            Kind::Oxalloc => "#e67e22",
            Kind::Anon => "#5bc0de",
            Kind::File => "#c0a16b",
            Kind::Stack => "#2c3e50",
            Kind::Kernel => "#7f8c8d",
            Kind::Guard => "#d5d8dc",
        }
    }

    /// ANSI 256-colour index close to [`Kind::color`].
    pub fn ansi(self) -> u8 {
        match self {
            Kind::Text => 167,
            Kind::RoData => 215,
            Kind::Data => 71,
            Kind::Bss => 114,
            Kind::Heap => 32,
            Kind::Library => 134,
            Kind::Oxalloc => 208,
            Kind::Anon => 81,
            Kind::File => 180,
            Kind::Stack => 60,
            Kind::Kernel => 245,
            Kind::Guard => 252,
        }
    }
}

fn proc_error(pid: u32, what: &str, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::NotFound => Error::new(format!("no process with PID {pid} (it has exited or never existed)")),
        io::ErrorKind::PermissionDenied => Error::new(format!(
            "no permission to read /proc/{pid}/{what}: the process belongs to another user (run as that user or as root)"
        )),
        _ => Error::new(format!("cannot read /proc/{pid}/{what}: {e}")),
    }
}

fn read_proc(pid: u32, what: &str) -> Result<String, Error> {
    let s =
        fs::read_to_string(format!("/proc/{pid}/{what}")).map_err(|e| proc_error(pid, what, e))?;
    Ok(s)
}

/// Checks that `pid` names a live process we may look at.
pub fn check_pid(pid: u32) -> Result<(), Error> {
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(proc_error(pid, "", io::ErrorKind::NotFound.into()));
    }
    read_proc(pid, "maps").map(|_| ())
}

/// Parses one line of `/proc/PID/maps`.
pub fn parse_maps_line(line: &str) -> Option<Mapping> {
    let mut it = line.splitn(6, ' ');
    let range = it.next()?;
    let perms = it.next()?;
    let offset = it.next()?;
    let _dev = it.next()?;
    let _inode = it.next()?;
    let path = it.next().unwrap_or("").trim_start().to_string();
    let (a, b) = range.split_once('-')?;
    Some(Mapping {
        start: u64::from_str_radix(a, 16).ok()?,
        end: u64::from_str_radix(b, 16).ok()?,
        perms: perms.to_string(),
        offset: u64::from_str_radix(offset, 16).ok()?,
        path,
        ..Mapping::default()
    })
}

/// Parses the whole text of a `maps` file (lines that do not parse are skipped).
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(parse_maps_line).collect()
}

/// Parses `smaps`: the `maps` lines, each followed by `Key: N kB` counters.
pub fn parse_smaps(text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        if let Some((key, rest)) = line.split_once(':') {
            if !key.contains(' ') && !key.contains('-') {
                let Some(m) = out.last_mut() else { continue };
                let kb: u64 = rest
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .unwrap_or(0);
                let bytes = kb * 1024;
                match key {
                    "Rss" => m.rss_bytes = bytes,
                    "Pss" => m.pss_bytes = bytes,
                    "Private_Dirty" => m.private_dirty_bytes = bytes,
                    "Swap" => m.swap_bytes = bytes,
                    "LazyFree" => m.lazy_free_bytes = bytes,
                    "AnonHugePages" => m.anon_huge_bytes = bytes,
                    _ => {}
                }
                continue;
            }
        }
        if let Some(m) = parse_maps_line(line) {
            out.push(m);
        }
    }
    out
}

/// `/proc/PID/smaps` of a live process.
pub fn read_smaps(pid: u32) -> Result<Vec<Mapping>, Error> {
    Ok(parse_smaps(&read_proc(pid, "smaps")?))
}

/// The few lines of `/proc/PID/status` the tool uses.
#[derive(Clone, Debug, Default)]
pub struct Status {
    pub name: String,
    pub vm_size_bytes: u64,
    pub vm_rss_bytes: u64,
    pub vm_hwm_bytes: u64,
    pub rss_anon_bytes: u64,
    pub rss_file_bytes: u64,
    pub threads: u64,
}

pub fn parse_status(text: &str) -> Status {
    let mut s = Status::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        let kb = || v.trim_end_matches("kB").trim().parse::<u64>().unwrap_or(0) * 1024;
        match k {
            "Name" => s.name = v.to_string(),
            "VmSize" => s.vm_size_bytes = kb(),
            "VmRSS" => s.vm_rss_bytes = kb(),
            "VmHWM" => s.vm_hwm_bytes = kb(),
            "RssAnon" => s.rss_anon_bytes = kb(),
            "RssFile" => s.rss_file_bytes = kb(),
            "Threads" => s.threads = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    s
}

pub fn read_status(pid: u32) -> Result<Status, Error> {
    Ok(parse_status(&read_proc(pid, "status")?))
}

/// The command line of a process, for titles.
pub fn read_cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).replace('\n', "\\n"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// The executable of a process (`/proc/PID/exe`), if readable.
pub fn read_exe(pid: u32) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/exe")).ok().map(|p| {
        p.to_string_lossy()
            .trim_end_matches(" (deleted)")
            .to_string()
    })
}

/// Resident bytes of `[start, end)` from `/proc/PID/pagemap` (bit 63 = present, bit 62 =
/// swapped; we count present pages). `None` when pagemap is not readable.
pub struct Pagemap {
    file: fs::File,
    page_bytes: u64,
}

impl Pagemap {
    pub fn open(pid: u32) -> Option<Pagemap> {
        let file = fs::File::open(format!("/proc/{pid}/pagemap")).ok()?;
        Some(Pagemap {
            file,
            page_bytes: 4096,
        })
    }

    pub fn resident_bytes(&mut self, start: u64, end: u64) -> Option<u64> {
        let first = start / self.page_bytes;
        let pages = end.saturating_sub(start).div_ceil(self.page_bytes) as usize;
        let mut buf = vec![0u8; pages * 8];
        self.file.seek(SeekFrom::Start(first * 8)).ok()?;
        self.file.read_exact(&mut buf).ok()?;
        let present = buf
            .chunks_exact(8)
            .filter(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                u64::from_le_bytes(b) >> 63 == 1
            })
            .count() as u64;
        Some(present * self.page_bytes)
    }
}

/// Names each mapping. `exe` is the program's path; `oxalloc_segments` are base addresses
/// of oxalloc segments (4 MiB each) known from its statistics mapping.
pub fn classify(maps: &[Mapping], exe: Option<&str>, oxalloc_segments: &[u64]) -> Vec<Kind> {
    let exe_path = exe.map(str::to_string).or_else(|| {
        // Without /proc/PID/exe, take the first file mapping as the program.
        maps.iter().find(|m| m.is_file()).map(|m| m.path.clone())
    });
    let mut kinds = Vec::with_capacity(maps.len());
    // End address of the program's writable data, while the next mapping may be its bss.
    let mut exe_data_end: Option<u64> = None;
    for m in maps {
        let is_exe = exe_path.as_deref() == Some(m.path.as_str());
        let kind = if m.perms.starts_with("---") {
            Kind::Guard
        } else if is_exe {
            if m.is_exec() {
                Kind::Text
            } else if m.is_write() {
                Kind::Data
            } else {
                Kind::RoData
            }
        } else if m.path == "[heap]" {
            Kind::Heap
        } else if m.path == "[stack]" {
            Kind::Stack
        } else if m.path.starts_with("[v") {
            Kind::Kernel
        } else if m.path.is_empty()
            && oxalloc_segments
                .iter()
                .any(|&s| s < m.end && s + crate::shm::SEGMENT_BYTES > m.start)
        {
            Kind::Oxalloc
        } else if m.path.is_empty() && exe_data_end == Some(m.start) && m.is_write() {
            Kind::Bss
        } else if m.is_file() && is_library(&m.path) {
            Kind::Library
        } else if m.is_file() {
            Kind::File
        } else {
            Kind::Anon
        };
        exe_data_end = (kind == Kind::Data).then_some(m.end);
        kinds.push(kind);
    }
    kinds
}

fn is_library(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.contains(".so") || name.starts_with("ld-linux")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
5581f5a00000-5581f5a02000 r--p 00000000 fe:00 247030                     /usr/bin/cat
5581f5a02000-5581f5a07000 r-xp 00002000 fe:00 247030                     /usr/bin/cat
5581f5a07000-5581f5a09000 r--p 00007000 fe:00 247030                     /usr/bin/cat
5581f5a0a000-5581f5a0b000 rw-p 00009000 fe:00 247030                     /usr/bin/cat
5581f5a0b000-5581f5a0c000 rw-p 00000000 00:00 0 
5581f6c4e000-5581f6c6f000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000400000 rw-p 00000000 00:00 0 
7f1c0a400000-7f1c0a428000 r--p 00000000 fe:00 263655                     /usr/lib/x86_64-linux-gnu/libc.so.6
7f1c0a428000-7f1c0a59d000 r-xp 00028000 fe:00 263655                     /usr/lib/x86_64-linux-gnu/libc.so.6
7ffd0b9b3000-7ffd0b9d4000 rw-p 00000000 00:00 0                          [stack]
7ffd0b9e2000-7ffd0b9e4000 r-xp 00000000 00:00 0                          [vdso]
";

    #[test]
    fn parses_and_classifies_the_textbook_regions() {
        let maps = parse_maps(MAPS);
        assert_eq!(maps.len(), 11);
        assert_eq!(maps[1].offset, 0x2000);
        assert_eq!(maps[5].path, "[heap]");
        assert_eq!(maps[4].path, "");
        let kinds = classify(&maps, Some("/usr/bin/cat"), &[0x7f0000000000]);
        use Kind::*;
        assert_eq!(
            kinds,
            vec![RoData, Text, RoData, Data, Bss, Heap, Oxalloc, Library, Library, Stack, Kernel]
        );
    }

    #[test]
    fn smaps_counters_attach_to_their_mapping() {
        let text = "\
00400000-00452000 r-xp 00000000 08:02 173521      /usr/bin/dbus-daemon
Size:                328 kB
Rss:                 300 kB
Pss:                 150 kB
Private_Dirty:         4 kB
LazyFree:              0 kB
VmFlags: rd ex mr mw me dw
7ffd0b9b3000-7ffd0b9d4000 rw-p 00000000 00:00 0                          [stack]
Rss:                  12 kB
";
        let m = parse_smaps(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].rss_bytes, 300 * 1024);
        assert_eq!(m[0].pss_bytes, 150 * 1024);
        assert_eq!(m[1].rss_bytes, 12 * 1024);
    }

    #[test]
    fn status_fields() {
        let s = parse_status("Name:\tpython3\nVmRSS:\t  1024 kB\nVmHWM:\t 2048 kB\nThreads:\t3\n");
        assert_eq!(s.name, "python3");
        assert_eq!(s.vm_rss_bytes, 1 << 20);
        assert_eq!(s.vm_hwm_bytes, 2 << 20);
        assert_eq!(s.threads, 3);
    }
}
