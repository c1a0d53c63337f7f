//! A device at the protocol level: a registered key that signs check-ins and reports, for
//! tests of what the server makes of them (no flash, no agent).

use otter_keys::signer::FileKey;
use otter_keys::wire::{CheckIn, Event, Report, Signed};

use super::{Registered, TestServer};

/// The device clock: the real time.
pub fn now() -> u64 {
    jiff::Timestamp::now().as_second() as u64
}

/// A registered device and its message counter.
pub struct SignedDevice {
    pub id: String,
    pub key: FileKey,
    pub counter: u64,
    pub _dir: tempfile::TempDir,
}

impl SignedDevice {
    /// Registers a device of `board` with `serial` (provisioning token `token`).
    pub async fn register(s: &TestServer, token: &str, board: &str, serial: &str) -> Self {
        let Registered { id, key, dir } =
            super::register_device(&s.client, &s.url, token, board, serial).await;
        Self {
            id,
            key,
            counter: 0,
            _dir: dir,
        }
    }

    /// Sends `message` (its counter set to the next one) signed with `other`, or with the
    /// device's own key; the response.
    pub async fn check_in_signed_by(
        &mut self,
        s: &TestServer,
        mut message: CheckIn,
        other: Option<&FileKey>,
    ) -> reqwest::Response {
        self.counter += 1;
        message.counter = self.counter;
        let signed = Signed::sign(message, other.unwrap_or(&self.key)).unwrap();
        s.client
            .post(s.at(&format!("/api/v1/devices/{}/checkin", self.id)))
            .json(&signed)
            .send()
            .await
            .unwrap()
    }

    /// A check-in running `version` with image hash `image_sha256`; asserts a 200.
    pub async fn check_in(&mut self, s: &TestServer, version: &str, image_sha256: [u8; 32]) {
        let mut message = super::checkin_message(&self.id, 0, now(), version);
        message.image_sha256 = image_sha256;
        let r = self.check_in_signed_by(s, message, None).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    /// Reports `event`; asserts it was stored (204).
    pub async fn report(&mut self, s: &TestServer, event: Event) {
        self.counter += 1;
        let report = Report {
            device_id: self.id.clone(),
            counter: self.counter,
            timestamp: now(),
            event_seq: self.counter,
            event,
        };
        let signed = Signed::sign(report, &self.key).unwrap();
        let r = s
            .client
            .post(s.at(&format!("/api/v1/devices/{}/reports", self.id)))
            .json(&signed)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    }
}
