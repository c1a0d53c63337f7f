//! Fault injection for crash tests of the real binary: with `OTTER_FAULT=<point>` in its
//! environment, the server kills itself with SIGKILL when it reaches that point, exactly as
//! a `kill -9` or a power cut would stop it there. Unset in production, it does nothing.

/// The environment variable naming the point.
pub const ENV: &str = "OTTER_FAULT";

/// Dies at once (SIGKILL, no clean-up) if `OTTER_FAULT` names `name`.
pub fn point(name: &str) {
    if std::env::var(ENV).is_ok_and(|v| v == name) {
        eprintln!("OTTER_FAULT={name}: killing this process");
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
}
