//! Reading a file we were told to load, and nothing else: no FIFO (it would hang), no device
//! (`/dev/zero` would fill memory), no symbolic link out of its directory (a link to
//! `/proc/self/environ` or `~/.aws/credentials` would be shown back as error snippets), and at
//! most [`MAX_FILE_BYTES`], however much the file grows while it is read.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest runbook or environments file read (the biggest shipped runbook is a few KiB).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Why a file was not read. None of these carries any of the file's content.
#[derive(Debug)]
pub enum Refused {
    /// It does not exist.
    Missing,
    /// A symbolic link to a place outside `within` (or a dangling one).
    LinkOutside { target: Option<PathBuf> },
    /// A FIFO, socket, device or directory.
    NotAFile { what: &'static str },
    /// Larger than the limit (or grew past it while read).
    TooLarge { limit: u64 },
    /// Not UTF-8 text.
    NotText,
    /// Any other error of the operating system.
    Io(std::io::Error),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Missing => f.write_str("it does not exist"),
            Refused::LinkOutside { target: Some(t) } => write!(
                f,
                "it is a symbolic link to {}, outside its directory",
                t.display()
            ),
            Refused::LinkOutside { target: None } => {
                f.write_str("it is a symbolic link that leads nowhere")
            }
            Refused::NotAFile { what } => write!(f, "it is {what}, not a regular file"),
            Refused::TooLarge { limit } => {
                write!(f, "it is larger than {} KiB", limit / 1024)
            }
            Refused::NotText => f.write_str("it is not UTF-8 text"),
            Refused::Io(e) => write!(f, "{e}"),
        }
    }
}

/// The text of `path`, when it is a regular file of at most `max` bytes, reached from
/// `within` without leaving it (a symbolic link may point to a file inside `within`).
pub fn read_text(path: &Path, within: &Path, max: u64) -> Result<String, Refused> {
    let bytes = read_bytes(path, Some(within), max)?;
    String::from_utf8(bytes).map_err(|_| Refused::NotText)
}

/// The bytes of a regular file of at most `max` bytes, anywhere (e.g. a CA file named by an
/// environment), or under `within` when given.
pub fn read_bytes(path: &Path, within: Option<&Path>, max: u64) -> Result<Vec<u8>, Refused> {
    let link = std::fs::symlink_metadata(path).map_err(io)?;
    if let Some(within) = within
        && link.file_type().is_symlink()
    {
        let target = std::fs::canonicalize(path).ok();
        let root = std::fs::canonicalize(within).map_err(io)?;
        match &target {
            Some(t) if t.starts_with(&root) => {}
            _ => {
                return Err(Refused::LinkOutside {
                    target: target.or_else(|| std::fs::read_link(path).ok()),
                });
            }
        }
    }
    // Opened without blocking (a FIFO would wait for a writer forever), then the opened file
    // itself is checked: nothing can be swapped in between the check and the read.
    let file = open_nonblocking(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(Refused::NotAFile {
            what: kind_of(&meta),
        });
    }
    if meta.len() > max {
        return Err(Refused::TooLarge { limit: max });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > max {
        return Err(Refused::TooLarge { limit: max });
    }
    Ok(bytes)
}

fn io(e: std::io::Error) -> Refused {
    if e.kind() == std::io::ErrorKind::NotFound {
        Refused::Missing
    } else {
        Refused::Io(e)
    }
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "a special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_inside_their_directory_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("ok.yaml"), "version: 1\n").unwrap();
        assert_eq!(
            read_text(&d.join("ok.yaml"), d, 100).unwrap(),
            "version: 1\n"
        );
        std::os::unix::fs::symlink(d.join("ok.yaml"), d.join("in.yaml")).unwrap();
        assert!(read_text(&d.join("in.yaml"), d, 100).is_ok());
        std::os::unix::fs::symlink("/proc/self/environ", d.join("env.yaml")).unwrap();
        assert!(matches!(
            read_text(&d.join("env.yaml"), d, 100),
            Err(Refused::LinkOutside { .. })
        ));
        std::os::unix::fs::symlink("/dev/zero", d.join("zero.yaml")).unwrap();
        assert!(matches!(
            read_text(&d.join("zero.yaml"), d, 100),
            Err(Refused::LinkOutside { .. })
        ));
        // Even where links are allowed, a device is not a file.
        assert!(matches!(
            read_bytes(&d.join("zero.yaml"), None, 100),
            Err(Refused::NotAFile { what: "a device" })
        ));
        let fifo = std::ffi::CString::new(d.join("fifo.yaml").to_str().unwrap()).unwrap();
        // SAFETY: a valid, NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            read_text(&d.join("fifo.yaml"), d, 100),
            Err(Refused::NotAFile { what: "a FIFO" })
        ));
        std::fs::write(d.join("big.yaml"), vec![b'a'; 101]).unwrap();
        assert!(matches!(
            read_text(&d.join("big.yaml"), d, 100),
            Err(Refused::TooLarge { limit: 100 })
        ));
        std::fs::write(d.join("bin.yaml"), [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_text(&d.join("bin.yaml"), d, 100),
            Err(Refused::NotText)
        ));
        assert!(matches!(
            read_text(&d.join("none.yaml"), d, 100),
            Err(Refused::Missing)
        ));
    }
}
