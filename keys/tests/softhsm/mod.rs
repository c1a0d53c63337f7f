//! SoftHSM2 standing in for a vendor's HSM: a configuration and one initialised token in a
//! temporary dir, and commands run against it. Shared by the key tests and, through
//! `#[path]`, by the end-to-end test of a server whose online keys are in a token.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub const TOKEN: &str = "otter-vendor";
pub const PIN: &str = "12345678";
const MODULES: [&str; 2] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
];

/// A SoftHSM2 configuration with one initialised token, all in a temporary dir.
pub struct SoftHsm {
    /// The temporary dir (tokens, configuration, and a place for the test's files).
    pub dir: tempfile::TempDir,
    conf: PathBuf,
    /// The SoftHSM2 module.
    pub module: PathBuf,
}

impl SoftHsm {
    /// `None` (with the reason printed) when SoftHSM2 is not installed, unless
    /// `OTTER_REQUIRE_ALL=1`, where that fails the test.
    pub fn start() -> Option<Self> {
        let module = MODULES.iter().map(PathBuf::from).find(|m| m.exists());
        let util = Command::new("softhsm2-util").arg("--version").output();
        let (Some(module), Ok(_)) = (module, util) else {
            assert!(
                std::env::var("OTTER_REQUIRE_ALL").as_deref() != Ok("1"),
                "OTTER_REQUIRE_ALL=1 but SoftHSM2 is not installed (apt-get install softhsm2)"
            );
            eprintln!("skipping: SoftHSM2 is not installed (apt-get install softhsm2)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        let init = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", TOKEN])
            .args(["--so-pin", "87654321", "--pin", PIN])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .unwrap();
        assert!(init.status.success(), "{init:?}");
        Some(Self { dir, conf, module })
    }

    /// Initialises another token, `label`, with user PIN `pin`.
    pub fn add_token(&self, label: &str, pin: &str) {
        let init = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", label])
            .args(["--so-pin", "87654321", "--pin", pin])
            .env("SOFTHSM2_CONF", &self.conf)
            .output()
            .unwrap();
        assert!(init.status.success(), "{init:?}");
    }

    /// `program`, run in the token's dir with its configuration, the module and the PIN.
    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .current_dir(self.dir.path())
            .env("SOFTHSM2_CONF", &self.conf)
            .env("OTTER_PKCS11_MODULE", &self.module)
            .env("OTTER_PKCS11_PIN", PIN);
        command
    }

    /// A path in the token's temporary dir.
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }
}
