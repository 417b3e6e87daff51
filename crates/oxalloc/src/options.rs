//! Reading and changing oxalloc's options while the program runs.
//!
//! Every option starts from its `OXALLOC_*` environment variable (read once, when the
//! allocator starts) or its default. Those in [`RuntimeOption`] may be changed at any
//! time from then on; the change takes effect at the next point the allocator reads
//! the option:
//!
//! | option | what it does | takes effect |
//! |---|---|---|
//! | `PURGE_DELAY_MS` | how long a free page stays cached | next purge check (the background thread wakes after its current sleep, which is at most the old delay) |
//! | `CACHE_MAX_MIB` | cap of cached free pages beyond recent demand | next free or allocation of a span |
//! | `DEMAND_WINDOW_MS` | window of recent demand kept resident | next purge check (the recorded peaks are reinterpreted) |
//! | `HUGE_PAGES` | transparent huge pages advice | memory mapped from then on |
//! | `FOREIGN_FREE` | what a free of another allocator's pointer does (0 ignore, 1 report once, 2 abort) | next such free |
//! | `VERBOSE` | report unusual events on stderr | at once |
//! | `SHOW_STATS` | print the summary at exit | at exit |
//!
//! Fixed at start (readable with [`get_by_name`], refused by [`set_by_name`] with
//! [`OptionError::FixedAtStart`]): `BACKGROUND_PURGE` (whether the purging thread
//! starts), `PAGE_SOURCE` (`mmap` or `brk` for segments), `STATS_FILE` and
//! `STATS_SHM` (paths, read from the environment at start or exit).
//!
//! ```
//! use oxalloc::options::{OptionError, RuntimeOption};
//!
//! let old = RuntimeOption::PurgeDelayMs.get();
//! RuntimeOption::PurgeDelayMs.set(50).unwrap();
//! assert_eq!(RuntimeOption::PurgeDelayMs.get(), 50);
//! assert_eq!(oxalloc::options::set_by_name("OXALLOC_PURGE_DELAY_MS", "soon"),
//!            Err(OptionError::InvalidValue));
//! RuntimeOption::PurgeDelayMs.set(old).unwrap();
//! ```

use core::fmt;
use oxalloc_core::options::{self as core_options, Opt};

/// An option that may change while the program runs (see the [module docs](self)
/// for when each change takes effect).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuntimeOption {
    /// `OXALLOC_PURGE_DELAY_MS`: milliseconds an empty page stays cached before it is
    /// given back to the OS (0: at once). At most one hour.
    PurgeDelayMs,
    /// `OXALLOC_CACHE_MAX_MIB`: most MiB of empty, still resident pages kept beyond what
    /// recent demand keeps; past it they are given back at once. At most 2^24 (and
    /// what fits the address space).
    CacheMaxMib,
    /// `OXALLOC_DEMAND_WINDOW_MS`: free pages up to the peak in use of this many recent
    /// milliseconds stay resident while the program is active (0: purge on the delay
    /// alone). At most one hour.
    DemandWindowMs,
    /// `OXALLOC_HUGE_PAGES` (0 or 1): ask for transparent huge pages on the memory
    /// mapped from now on.
    HugePages,
    /// `OXALLOC_FOREIGN_FREE` (0, 1 or 2): a free or realloc of a pointer into another
    /// allocator's mapping is ignored (0), reported the first time (1) or aborts (2).
    ForeignFree,
    /// `OXALLOC_VERBOSE` (0 or 1): report unusual events (OS refusals) on stderr.
    Verbose,
    /// `OXALLOC_SHOW_STATS` (0 or 1): print the statistics summary on stderr at exit.
    ShowStats,
}

const HOUR_MS: u64 = 3_600_000;

impl RuntimeOption {
    /// Every run-time option.
    pub const ALL: [RuntimeOption; 7] = [
        RuntimeOption::PurgeDelayMs,
        RuntimeOption::CacheMaxMib,
        RuntimeOption::DemandWindowMs,
        RuntimeOption::HugePages,
        RuntimeOption::ForeignFree,
        RuntimeOption::Verbose,
        RuntimeOption::ShowStats,
    ];

    fn opt(self) -> &'static Opt {
        match self {
            RuntimeOption::PurgeDelayMs => &core_options::PURGE_DELAY_MS,
            RuntimeOption::CacheMaxMib => &core_options::CACHE_MAX_MIB,
            RuntimeOption::DemandWindowMs => &core_options::DEMAND_WINDOW_MS,
            RuntimeOption::HugePages => &core_options::HUGE_PAGES,
            RuntimeOption::ForeignFree => &core_options::FOREIGN_FREE,
            RuntimeOption::Verbose => &core_options::VERBOSE,
            RuntimeOption::ShowStats => &core_options::SHOW_STATS,
        }
    }

    /// The option's name without the `OXALLOC_` prefix, e.g. `"PURGE_DELAY_MS"`.
    ///
    /// ```
    /// use oxalloc::options::RuntimeOption;
    /// assert_eq!(RuntimeOption::CacheMaxMib.name(), "CACHE_MAX_MIB");
    /// ```
    pub fn name(self) -> &'static str {
        self.opt().name
    }

    /// The option named `name`, with or without the `OXALLOC_` prefix (any case);
    /// `None` for an unknown name or one fixed at start.
    ///
    /// ```
    /// use oxalloc::options::RuntimeOption;
    /// assert_eq!(RuntimeOption::from_name("oxalloc_purge_delay_ms"),
    ///            Some(RuntimeOption::PurgeDelayMs));
    /// assert_eq!(RuntimeOption::from_name("BACKGROUND_PURGE"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<RuntimeOption> {
        let name = strip_prefix(name);
        RuntimeOption::ALL
            .into_iter()
            .find(|o| o.name().eq_ignore_ascii_case(name))
    }

    /// What the option does (one line).
    pub fn doc(self) -> &'static str {
        self.opt().doc
    }

    /// The built-in default (without the environment variable).
    pub fn default_value(self) -> u64 {
        self.opt().default_value()
    }

    /// Whether the option is a flag (0 or 1).
    pub fn is_flag(self) -> bool {
        self.opt().is_flag()
    }

    /// The largest value [`set`](RuntimeOption::set) accepts.
    pub fn max(self) -> u64 {
        match self {
            RuntimeOption::PurgeDelayMs | RuntimeOption::DemandWindowMs => HOUR_MS,
            // The cap is used as `MiB << 20` in a usize.
            RuntimeOption::CacheMaxMib => (1u64 << 24).min((usize::MAX >> 20) as u64),
            RuntimeOption::ForeignFree => 2,
            RuntimeOption::HugePages | RuntimeOption::Verbose | RuntimeOption::ShowStats => 1,
        }
    }

    /// The value in force now (a flag reads 0 or 1).
    ///
    /// ```
    /// use oxalloc::options::RuntimeOption;
    /// // Unless OXALLOC_FOREIGN_FREE says otherwise: report the first one.
    /// if std::env::var_os("OXALLOC_FOREIGN_FREE").is_none() {
    ///     assert_eq!(RuntimeOption::ForeignFree.get(), 1);
    /// }
    /// ```
    pub fn get(self) -> u64 {
        // The allocator reads the environment once, when it starts: start it first,
        // so what is read is what is in force.
        oxalloc_core::tls::global_init();
        self.opt().get()
    }

    /// Changes the value; returns the previous one. A value above
    /// [`max`](RuntimeOption::max) is refused with [`OptionError::OutOfRange`] and
    /// changes nothing.
    ///
    /// ```
    /// use oxalloc::options::{OptionError, RuntimeOption};
    /// let old = RuntimeOption::CacheMaxMib.set(64).unwrap();
    /// assert_eq!(RuntimeOption::CacheMaxMib.get(), 64);
    /// assert_eq!(
    ///     RuntimeOption::Verbose.set(2),
    ///     Err(OptionError::OutOfRange { value: 2, max: 1 })
    /// );
    /// RuntimeOption::CacheMaxMib.set(old).unwrap();
    /// ```
    pub fn set(self, value: u64) -> Result<u64, OptionError> {
        let max = self.max();
        if value > max {
            return Err(OptionError::OutOfRange { value, max });
        }
        // Start the allocator first: its start-up reads the environment, which would
        // otherwise overwrite the value later.
        oxalloc_core::tls::global_init();
        let old = self.opt().get();
        self.opt().set(value);
        Ok(old)
    }
}

impl fmt::Display for RuntimeOption {
    /// The environment variable's name, e.g. `OXALLOC_PURGE_DELAY_MS`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OXALLOC_{}", self.name())
    }
}

/// Why an option could not be read or set.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionError {
    /// No option has this name.
    UnknownName,
    /// The option is read once at start and cannot change now (its name).
    FixedAtStart(&'static str),
    /// The value does not parse: a number wants decimal digits, a flag 1/0,
    /// true/false, yes/no or on/off.
    InvalidValue,
    /// The value is above the option's largest.
    OutOfRange {
        /// The value given.
        value: u64,
        /// The largest allowed.
        max: u64,
    },
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionError::UnknownName => f.write_str("no oxalloc option has this name"),
            OptionError::FixedAtStart(name) => write!(
                f,
                "OXALLOC_{name} is read once at start and cannot change while running"
            ),
            OptionError::InvalidValue => f.write_str(
                "invalid value: a number wants decimal digits, a flag 1/0, true/false, yes/no or on/off",
            ),
            OptionError::OutOfRange { value, max } => {
                write!(f, "value {value} is above the largest allowed, {max}")
            }
        }
    }
}

impl core::error::Error for OptionError {}

fn strip_prefix(name: &str) -> &str {
    match name.get(..8) {
        Some(p) if p.eq_ignore_ascii_case("OXALLOC_") => &name[8..],
        _ => name,
    }
}

/// The options fixed at start that [`get_by_name`] reads: numeric and flag options
/// only (the paths are read from the environment when used).
fn fixed(name: &str) -> Option<&'static Opt> {
    [
        &core_options::BACKGROUND_PURGE,
        &core_options::PAGE_SOURCE_BRK,
    ]
    .into_iter()
    .find(|o| o.name.eq_ignore_ascii_case(name))
}

/// Whether `name` is one of the path options (fixed at start, not numeric).
fn path_option(name: &str) -> Option<&'static str> {
    [&core_options::STATS_FILE, &core_options::STATS_SHM]
        .into_iter()
        .find(|o| o.name.eq_ignore_ascii_case(name))
        .map(|o| o.name)
}

/// Reads an option by name (with or without `OXALLOC_`, any case): a run-time option
/// or one fixed at start (`BACKGROUND_PURGE` 0/1, `PAGE_SOURCE` 0 for `mmap`, 1 for
/// `brk`). The path options (`STATS_FILE`, `STATS_SHM`) are not numbers:
/// [`OptionError::FixedAtStart`].
///
/// ```
/// assert_eq!(oxalloc::options::get_by_name("NO_SUCH_OPTION"),
///            Err(oxalloc::options::OptionError::UnknownName));
/// assert!(oxalloc::options::get_by_name("OXALLOC_BACKGROUND_PURGE").unwrap() <= 1);
/// ```
pub fn get_by_name(name: &str) -> Result<u64, OptionError> {
    if let Some(o) = RuntimeOption::from_name(name) {
        return Ok(o.get());
    }
    let bare = strip_prefix(name);
    if let Some(o) = fixed(bare) {
        oxalloc_core::tls::global_init();
        return Ok(o.get());
    }
    match path_option(bare) {
        Some(n) => Err(OptionError::FixedAtStart(n)),
        None => Err(OptionError::UnknownName),
    }
}

/// Sets a run-time option by name from text, as its environment variable would be
/// written (a number in decimal, a flag as 1/0, true/false, yes/no, on/off); returns
/// the previous value. An unknown name, an option fixed at start, a value that does not
/// parse or is out of range is refused with an error and changes nothing.
///
/// ```
/// use oxalloc::options::{set_by_name, OptionError};
/// let old = set_by_name("OXALLOC_DEMAND_WINDOW_MS", "100").unwrap();
/// assert_eq!(oxalloc::options::get_by_name("DEMAND_WINDOW_MS"), Ok(100));
/// assert_eq!(set_by_name("BACKGROUND_PURGE", "0"),
///            Err(OptionError::FixedAtStart("BACKGROUND_PURGE")));
/// assert_eq!(set_by_name("PURGE_DELAY_MS", "-1"), Err(OptionError::InvalidValue));
/// set_by_name("DEMAND_WINDOW_MS", &old.to_string()).unwrap();
/// ```
pub fn set_by_name(name: &str, value: &str) -> Result<u64, OptionError> {
    let Some(o) = RuntimeOption::from_name(name) else {
        let bare = strip_prefix(name);
        return match fixed(bare).map(|o| o.name).or_else(|| path_option(bare)) {
            Some(n) => Err(OptionError::FixedAtStart(n)),
            None => Err(OptionError::UnknownName),
        };
    };
    let v = o
        .opt()
        .parse(value.trim().as_bytes())
        .ok_or(OptionError::InvalidValue)?;
    o.set(v)
}
