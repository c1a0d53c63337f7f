//! JSON forms of types from otter-boot, which has no serde: a version as `"1.4.0"`, a slot
//! as `"A"`/`"B"`, a SHA-256 digest as 64 hex digits. Used with `#[serde(with = "…")]`.

use serde::{Deserialize, Deserializer};

/// For a unit variant of an internally tagged enum: refuses any field besides the tag.
pub(crate) fn no_fields<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NoFields {}
    NoFields::deserialize(d).map(|_| ())
}

/// [`Version`](otter_boot::image::Version) as the string `"major.minor.patch"`.
pub(crate) mod version {
    use otter_boot::image::Version;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(value: &Version, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Version, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|e| D::Error::custom(format_args!("version {text:?}: {e}")))
    }
}

/// [`Slot`](otter_boot::Slot) as `"A"` or `"B"`.
pub(crate) mod slot {
    use otter_boot::Slot;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(value: &Slot, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match value {
            Slot::A => "A",
            Slot::B => "B",
        })
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Slot, D::Error> {
        match String::deserialize(d)?.as_str() {
            "A" => Ok(Slot::A),
            "B" => Ok(Slot::B),
            other => Err(D::Error::custom(format_args!(
                "slot: expected \"A\" or \"B\", found {other:?}"
            ))),
        }
    }
}

/// A 32-byte digest as 64 hex digits.
pub(crate) mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(value: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(value))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&text, &mut out).map_err(|e| {
            D::Error::custom(format_args!(
                "sha256: expected 64 hex digits, found {} characters ({e})",
                text.len()
            ))
        })?;
        Ok(out)
    }
}
