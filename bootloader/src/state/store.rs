//! Loads and saves the boot state record with `sequential-storage` on the state partition.

use core::fmt;
use core::ops::Range;

use embedded_storage::nor_flash::NorFlash;
use sequential_storage::cache::{Cache, Uncached};
use sequential_storage::map::{MapConfig, MapStorage};

use super::record::BootState;
use crate::flash::{Async, FlashError, block_on};

/// The one key under which the record is stored.
const STATE_KEY: u8 = 1;

/// Scratch space for one item, aligned for flashes that need aligned RAM buffers.
#[repr(align(32))]
struct ItemBuffer([u8; 96]);

/// Why the boot state could not be read or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateError {
    /// The flash driver failed.
    Flash(FlashError),
    /// `sequential-storage` found damage it could not repair.
    Corrupted,
    /// The stored record is not one this code wrote.
    Malformed,
    /// The partition cannot hold the record (`sequential-storage` reports it full).
    Full,
    /// `sequential-storage` reported an internal error.
    Storage,
    /// The partition holds no record, yet both slots hold verified images: the record was
    /// lost (erased or damaged into something that reads as empty), since a device stores
    /// its first record before a second image is ever installed. Read as factory-fresh,
    /// such a state would drop the anti-rollback floor to 0.
    Lost,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flash(e) => write!(f, "boot state: {e}"),
            Self::Corrupted => write!(f, "boot state partition is corrupted beyond repair"),
            Self::Malformed => write!(f, "boot state record is malformed"),
            Self::Full => write!(f, "boot state partition is full"),
            Self::Storage => write!(f, "boot state storage reported an internal error"),
            Self::Lost => write!(
                f,
                "boot state partition is empty but both slots hold verified images: \
                 the record was lost (a factory-fresh device holds one image)"
            ),
        }
    }
}

impl<E: embedded_storage::nor_flash::NorFlashError> From<sequential_storage::Error<E>>
    for StateError
{
    fn from(e: sequential_storage::Error<E>) -> Self {
        use sequential_storage::Error as E;
        match e {
            E::Storage { value, .. } => Self::Flash(FlashError::from_driver(value)),
            E::Corrupted { .. } => Self::Corrupted,
            E::SerializationError(_) => Self::Malformed,
            E::FullStorage | E::ItemTooBig => Self::Full,
            _ => Self::Storage,
        }
    }
}

/// Checks that `range` of a device like `S` can hold the map.
pub(crate) fn usable<S: NorFlash>(range: Range<u32>) -> bool {
    MapConfig::<Async<'_, S>>::try_new(range).is_ok()
}

type StateMap<'f, S> = MapStorage<u8, Async<'f, S>, Cache<Uncached, Uncached, Uncached, u8>>;

/// A map over the state partition; uncached, so every call reads what is really on flash.
fn map<S: NorFlash>(flash: &mut S, range: Range<u32>) -> Result<StateMap<'_, S>, StateError> {
    let config = MapConfig::try_new(range).map_err(|_| StateError::Storage)?;
    Ok(MapStorage::new(Async(flash), config, Cache::new_uncached()))
}

/// The stored record, or `None` on a device that never stored one.
pub(crate) fn load<S: NorFlash>(
    flash: &mut S,
    range: Range<u32>,
) -> Result<Option<BootState>, StateError> {
    let mut map = map(flash, range)?;
    let mut buf = ItemBuffer([0; 96]);
    Ok(block_on(
        map.fetch_item::<BootState>(&mut buf.0, &STATE_KEY),
    )?)
}

/// Replaces the stored record; when this returns `Ok` the new record is on flash.
pub(crate) fn save<S: NorFlash>(
    flash: &mut S,
    range: Range<u32>,
    state: &BootState,
) -> Result<(), StateError> {
    let mut map = map(flash, range)?;
    let mut buf = ItemBuffer([0; 96]);
    Ok(block_on(map.store_item(&mut buf.0, &STATE_KEY, state))?)
}

impl core::error::Error for StateError {}
