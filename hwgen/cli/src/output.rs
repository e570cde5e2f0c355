//! Where command results go: a writer whose errors reach `main` instead of panicking inside
//! `println!`. A closed pipe (`hwgen check ... | head -1`) ends the command quietly; any other
//! failure (`> /dev/full`) is an error that says output could not be written.

use std::fmt;
use std::io::{self, Write};

/// Writing a command's output failed.
#[derive(Debug)]
pub struct OutputError(pub io::Error);

impl OutputError {
    /// Whether the reader went away (EPIPE): nobody is left to tell, so the command ends
    /// quietly.
    pub fn is_closed_pipe(&self) -> bool {
        self.0.kind() == io::ErrorKind::BrokenPipe
    }
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The OS text alone ("No space left on device"), without Rust's "(os error 28)".
        let text = self.0.to_string();
        let text = text.split(" (os error").next().unwrap_or(&text);
        write!(f, "writing output: {text}")
    }
}

// No `source`: the message already holds the OS text, and `{:#}` would repeat it.
impl std::error::Error for OutputError {}

/// A command's standard output: `write!`/`writeln!` on it return [`OutputError`].
pub struct Output<W: Write> {
    inner: W,
}

impl<W: Write> Output<W> {
    /// Output into `inner`.
    pub fn new(inner: W) -> Self {
        Self { inner }
    }

    /// What `write!` and `writeln!` call.
    pub fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> Result<(), OutputError> {
        self.inner.write_fmt(args).map_err(OutputError)
    }

    /// Writes `text` as given.
    pub fn text(&mut self, text: &str) -> Result<(), OutputError> {
        self.inner.write_all(text.as_bytes()).map_err(OutputError)
    }

    /// Flushes buffered output; called before the command reports success.
    pub fn flush(&mut self) -> Result<(), OutputError> {
        self.inner.flush().map_err(OutputError)
    }
}

/// Writes a diagnostic line to standard error; if even that fails there is nobody to tell.
pub fn diagnostic(args: fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args);
    let _ = err.write_all(b"\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that fails every write with `kind`.
    struct Failing(io::ErrorKind, Option<i32>);

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(match self.1 {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::from(self.0),
            })
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn write_errors_propagate_and_name_the_cause() {
        // 28 is ENOSPC on Linux, what /dev/full answers.
        let mut out = Output::new(Failing(io::ErrorKind::Other, Some(28)));
        let err = writeln!(out, "hello {}", 1).unwrap_err();
        assert!(!err.is_closed_pipe());
        if cfg!(target_os = "linux") {
            assert_eq!(err.to_string(), "writing output: No space left on device");
        }
    }

    #[test]
    fn closed_pipe_is_recognized() {
        let mut out = Output::new(Failing(io::ErrorKind::BrokenPipe, None));
        assert!(out.text("x").unwrap_err().is_closed_pipe());
    }

    #[test]
    fn writes_reach_the_writer() {
        let mut out = Output::new(Vec::new());
        writeln!(out, "a{}", 1).unwrap();
        out.text("b").unwrap();
        out.flush().unwrap();
        assert_eq!(out.inner, b"a1\nb");
    }
}
