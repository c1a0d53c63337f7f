//! Simulated devices: each a state dir with a 4 MiB NOR flash in a file, provisioned like a
//! factory would, living through resets and check-ins with the real agent and the real
//! boot decision of otter-boot.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use otter_agent::Agent;
use otter_agent::after_boot::AfterBoot;
use otter_agent::config::{Config, HealthCheck};
use otter_agent::cycle::Outcome;
use otter_boot::state::BootDecision;

use super::DemoError;

/// One simulated device.
pub struct SimDevice {
    config: Config,
    id: String,
}

/// What a device needs at provisioning.
pub struct Factory<'a> {
    /// The server it registers with.
    pub server: &'a str,
    /// A `provision` token.
    pub token: &'a str,
    /// Its board.
    pub hardware_id: &'a str,
    /// The trust bundle directory.
    pub trust: &'a Path,
    /// The signed image programmed into slot A.
    pub image: &'a Path,
    /// The health checks that gate a trial's confirmation.
    pub health_checks: &'a [HealthCheck],
}

impl SimDevice {
    /// Registers a device in `dir` under `serial`, programs the factory image into slot A
    /// and powers it on once.
    pub async fn provision(dir: PathBuf, serial: &str, f: &Factory<'_>) -> Result<Self, DemoError> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| DemoError::new(format!("{}: {e}", dir.display())))?;
        let mut config = Config::simulated(&dir);
        config.health_checks = f.health_checks.to_vec();
        let request = otter_agent::provision::Request {
            server: f.server,
            token: f.token,
            hardware_id: f.hardware_id,
            serial,
            trust: f.trust,
        };
        (otter_agent::provision::provision(&dir, &request).await)
            .map_err(|e| DemoError::new(format!("provisioning {serial}: {e}")))?;
        let mut device = Self {
            config,
            id: String::new(),
        };
        let agent = device.agent()?;
        (otter_agent::sim::write_factory_image(agent.device(), f.image))
            .map_err(|e| DemoError::new(format!("factory image of {serial}: {e}")))?;
        device.id = agent.identity().device_id.clone();
        drop(agent);
        device.reset()?;
        Ok(device)
    }

    /// Its device id on the server.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The agent as a fresh process start sees it; a reboot it asks for is done by the
    /// caller ([`SimDevice::live`]).
    fn agent(&self) -> Result<Agent, DemoError> {
        let agent = (Agent::open(self.config.clone())).map_err(|e| {
            DemoError::new(format!("agent of {}: {e}", self.config.state_dir.display()))
        })?;
        Ok(agent.with_reboot_hook(Arc::new(|| Ok(true))))
    }

    /// Power off and on: the bootloader decides on the flash.
    pub fn reset(&self) -> Result<BootDecision, DemoError> {
        let agent = self.agent()?;
        (otter_agent::sim::reset(agent.device())).map_err(|e| DemoError::new(format!("reset: {e}")))
    }

    /// One round of a device's life: after a boot the agent confirms a healthy trial (or
    /// abandons a sick one), then checks in; the device resets whenever the agent asked for
    /// a reboot. Errors of the cycle are the agent's to report; only the device's own
    /// failures end the demo.
    pub async fn live(&self) -> Result<(), DemoError> {
        let agent = self.agent()?;
        match agent.after_boot().await {
            Ok(AfterBoot::Unhealthy(_) | AfterBoot::Rejected(_)) => {
                drop(agent);
                self.reset()?;
                return Ok(());
            }
            Ok(_) => {}
            Err(e) => return Err(DemoError::new(format!("device {}: {e}", self.id))),
        }
        if let Ok(Outcome::Installed { .. }) = agent.check().await {
            drop(agent);
            self.reset()?;
        }
        Ok(())
    }
}
