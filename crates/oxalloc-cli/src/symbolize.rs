//! Turning run-time addresses of another process into function, file and line.
//!
//! Input: addresses and the process's `/proc/PID/maps` (taken by the process itself at exit,
//! so it matches even after the process is gone). For each address: find the file mapping that
//! contains it, turn it into a file offset (`addr - start + offset`), turn the file offset
//! into the ELF's own virtual address through its `PT_LOAD` program headers, and ask
//! `addr2line` (DWARF, then the symbol table) for the frames there, inlined ones included.
//! Return addresses point after the call, so callers pass `is_return_address` and we look up
//! `addr - 1`, which is inside the call instruction.

use std::collections::HashMap;
use std::path::Path;

use object::{Object, ObjectSegment};

use crate::procfs::Mapping;

/// One source-level frame at an address (an inlined call gives several for one address).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Frame {
    pub addr: u64,
    /// File name of the module (executable or library), if the address was in one.
    pub module: Option<String>,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
}

impl Frame {
    /// `function file:line` or what is known of it, for reports.
    pub fn describe(&self) -> String {
        let func = self.function.as_deref().unwrap_or("??");
        match (&self.file, self.line, &self.module) {
            (Some(f), Some(l), _) => format!("{func} {f}:{l}"),
            (Some(f), None, _) => format!("{func} {f}"),
            (None, _, Some(m)) => format!("{func} ({m})"),
            (None, _, None) => func.to_string(),
        }
    }
}

struct Module {
    loader: addr2line::Loader,
    /// `(file offset, file size, virtual address)` of each loadable segment.
    segments: Vec<(u64, u64, u64)>,
}

/// Symbolises addresses of one process; caches one `addr2line` context per module.
pub struct Symbolizer {
    maps: Vec<Mapping>,
    modules: HashMap<String, Option<Module>>,
}

fn load(path: &str) -> Option<Module> {
    let data = std::fs::read(path).ok()?;
    let file = object::File::parse(&*data).ok()?;
    let segments = file
        .segments()
        .map(|s| {
            let (off, size) = s.file_range();
            (off, size, s.address())
        })
        .collect();
    let loader = addr2line::Loader::new(path).ok()?;
    Some(Module { loader, segments })
}

impl Symbolizer {
    pub fn new(maps: Vec<Mapping>) -> Symbolizer {
        Symbolizer {
            maps,
            modules: HashMap::new(),
        }
    }

    /// The frames at `addr`, innermost first; always at least one.
    pub fn symbolize(&mut self, addr: u64, is_return_address: bool) -> Vec<Frame> {
        let unknown = Frame {
            addr,
            ..Frame::default()
        };
        let Some(m) = self
            .maps
            .iter()
            .find(|m| m.contains(addr) && m.is_file())
            .cloned()
        else {
            return vec![unknown];
        };
        let path = m.path.trim_end_matches(" (deleted)").to_string();
        let module_name = Path::new(&path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        let unknown = Frame {
            module: module_name.clone(),
            ..unknown
        };
        let module = self
            .modules
            .entry(path.clone())
            .or_insert_with(|| load(&path));
        let Some(module) = module else {
            return vec![unknown];
        };
        let file_offset = addr - m.start + m.offset;
        let Some(svma) = module
            .segments
            .iter()
            .find(|(off, size, _)| *off <= file_offset && file_offset < off + size)
            .map(|(off, _, vaddr)| vaddr + (file_offset - off))
        else {
            return vec![unknown];
        };
        let probe = if is_return_address {
            svma.saturating_sub(1)
        } else {
            svma
        };
        let mut out = Vec::new();
        if let Ok(mut frames) = module.loader.find_frames(probe) {
            while let Ok(Some(f)) = frames.next() {
                let function = f
                    .function
                    .as_ref()
                    .and_then(|n| n.demangle().ok())
                    .map(|c| clean(&c));
                let (file, line) = match &f.location {
                    Some(l) => (l.file.map(str::to_string), l.line),
                    None => (None, None),
                };
                out.push(Frame {
                    addr,
                    module: module_name.clone(),
                    function,
                    file,
                    line,
                });
            }
        }
        if out.iter().all(|f| f.function.is_none()) {
            let sym = module
                .loader
                .find_symbol(probe)
                .map(|s| clean(&addr2line::demangle_auto(s.into(), None)));
            if let Some(first) = out.first_mut() {
                first.function = sym;
            } else {
                out.push(Frame {
                    function: sym,
                    ..unknown
                });
            }
        }
        out
    }
}

/// Drops the `::h0123456789abcdef` hash that legacy Rust mangling leaves on names.
fn clean(name: &str) -> String {
    match name.rfind("::h") {
        Some(i) if name.len() - i == 19 && name[i + 3..].chars().all(|c| c.is_ascii_hexdigit()) => {
            name[..i].to_string()
        }
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn marker_function_for_symbolize_test(x: u64) -> u64 {
        std::hint::black_box(x.wrapping_mul(31).rotate_left(7))
    }

    #[test]
    fn finds_a_function_of_this_test_binary_from_its_maps() {
        assert_eq!(marker_function_for_symbolize_test(1), 31u64.rotate_left(7));
        let f: fn(u64) -> u64 = marker_function_for_symbolize_test;
        let addr = f as usize as u64;
        let maps = crate::procfs::parse_maps(&std::fs::read_to_string("/proc/self/maps").unwrap());
        let mut s = Symbolizer::new(maps);
        let frames = s.symbolize(addr, false);
        // Innermost first: in an optimised build the first instruction may belong to
        // an inlined callee (`wrapping_mul`); the last frame is the function itself.
        let f = frames.last().unwrap();
        let name = f.function.as_deref().unwrap_or("");
        assert!(
            name.contains("marker_function_for_symbolize_test"),
            "{frames:?}"
        );
        assert!(
            f.file.as_deref().unwrap_or("").ends_with("symbolize.rs"),
            "{frames:?}"
        );
        assert!(f.line.is_some(), "{frames:?}");
    }

    #[test]
    fn libc_symbols_without_debug_info() {
        let addr = libc::getpid as *const () as usize as u64;
        let maps = crate::procfs::parse_maps(&std::fs::read_to_string("/proc/self/maps").unwrap());
        let mut s = Symbolizer::new(maps);
        let frames = s.symbolize(addr, false);
        assert!(
            frames[0]
                .module
                .as_deref()
                .unwrap_or("")
                .starts_with("libc"),
            "{frames:?}"
        );
        assert!(
            frames[0]
                .function
                .as_deref()
                .unwrap_or("")
                .contains("getpid"),
            "{frames:?}"
        );
    }

    #[test]
    fn unknown_addresses_stay_unknown() {
        let mut s = Symbolizer::new(Vec::new());
        let f = s.symbolize(0x1234, true);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].describe(), "??");
    }

    #[test]
    fn strips_legacy_hashes() {
        assert_eq!(clean("foo::bar::h0123456789abcdef"), "foo::bar");
        assert_eq!(clean("foo::hello"), "foo::hello");
    }
}
