//! Two lexical rules of libpq that the syntax, resolution and the service file share: what counts
//! as white space, and how a file name is joined to its directory. A leaf: it imports nothing of
//! this crate.

use std::ffi::OsString;
use std::path::PathBuf;

/// C's `isspace` in the C locale, which libpq uses throughout (Rust's `is_ascii_whitespace`
/// leaves out `\v`).
pub(crate) fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// `dir` followed by `/name`, spelled as libpq spells it (`"%s/%s"`).
pub(crate) fn in_dir(dir: PathBuf, name: &str) -> PathBuf {
    let mut path = OsString::from(dir);
    path.push("/");
    path.push(name);
    PathBuf::from(path)
}
