//! Where the two image slots and the boot-state partition live, checked once at start so
//! no later flash operation can stray outside its partition.

use core::fmt;

use embedded_storage::nor_flash::NorFlash;

/// One of the two image slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// The first slot (factory image).
    A,
    /// The second slot.
    B,
}

impl Slot {
    /// The slot that is not this one.
    pub const fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::A => "A",
            Self::B => "B",
        })
    }
}

/// A region of one flash device. `device` tells partitions on different chips apart (slot B
/// on external SPI flash, say); only partitions on the same device can overlap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Which flash device holds it.
    pub device: u8,
    /// Start, in bytes from the start of the device.
    pub offset: u32,
    /// Length in bytes.
    pub size: u32,
}

impl Partition {
    /// A partition of `size` bytes at `offset` on `device`.
    pub const fn new(device: u8, offset: u32, size: u32) -> Self {
        Self {
            device,
            offset,
            size,
        }
    }

    /// One past the last byte, or `None` if that overflows.
    pub const fn end(&self) -> Option<u32> {
        self.offset.checked_add(self.size)
    }

    /// Checks this partition against the flash device that holds it: whole erase sectors,
    /// inside the device.
    pub fn check_on<F: NorFlash>(&self, name: PartitionName, flash: &F) -> Result<(), LayoutError> {
        let erase = u32::try_from(F::ERASE_SIZE).map_err(|_| LayoutError::Misaligned(name))?;
        if erase == 0 || !self.offset.is_multiple_of(erase) || !self.size.is_multiple_of(erase) {
            return Err(LayoutError::Misaligned(name));
        }
        let end = self.end().ok_or(LayoutError::Overflow(name))?;
        if end as usize > flash.capacity() {
            return Err(LayoutError::OutsideDevice(name));
        }
        Ok(())
    }

    fn overlaps(&self, other: &Self) -> bool {
        self.device == other.device
            && self.offset < other.end().unwrap_or(u32::MAX)
            && other.offset < self.end().unwrap_or(u32::MAX)
    }
}

/// Names the partition a [`LayoutError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionName {
    /// Slot A.
    SlotA,
    /// Slot B.
    SlotB,
    /// The boot-state partition.
    State,
}

/// Why a layout is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The partition has no bytes.
    Empty(PartitionName),
    /// offset + size overflows 32 bits.
    Overflow(PartitionName),
    /// Two partitions on the same device share bytes.
    Overlap(PartitionName, PartitionName),
    /// Offset or size is not a whole number of erase sectors.
    Misaligned(PartitionName),
    /// The partition ends past the device.
    OutsideDevice(PartitionName),
    /// The state partition cannot hold the boot state (it needs at least two erase sectors
    /// of a size `sequential-storage` can use).
    StateUnusable,
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty(p) => write!(f, "partition {p:?} is empty"),
            Self::Overflow(p) => write!(f, "partition {p:?} ends past 4 GiB"),
            Self::Overlap(a, b) => write!(f, "partitions {a:?} and {b:?} overlap"),
            Self::Misaligned(p) => {
                write!(f, "partition {p:?} is not aligned to whole erase sectors")
            }
            Self::OutsideDevice(p) => write!(f, "partition {p:?} ends past its flash device"),
            Self::StateUnusable => write!(
                f,
                "state partition must span at least two erase sectors usable by sequential-storage"
            ),
        }
    }
}

/// The A/B layout: two image slots and the boot-state partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    slot_a: Partition,
    slot_b: Partition,
    state: Partition,
}

impl Layout {
    /// A layout, refused if a partition is empty, overflows, or overlaps another on the same
    /// device. Alignment is checked against the devices by [`Partition::check_on`].
    pub fn new(
        slot_a: Partition,
        slot_b: Partition,
        state: Partition,
    ) -> Result<Self, LayoutError> {
        let named = [
            (PartitionName::SlotA, slot_a),
            (PartitionName::SlotB, slot_b),
            (PartitionName::State, state),
        ];
        for (name, p) in named {
            if p.size == 0 {
                return Err(LayoutError::Empty(name));
            }
            p.end().ok_or(LayoutError::Overflow(name))?;
        }
        for (i, (na, a)) in named.iter().enumerate() {
            for (nb, b) in named.iter().skip(i + 1) {
                if a.overlaps(b) {
                    return Err(LayoutError::Overlap(*na, *nb));
                }
            }
        }
        Ok(Self {
            slot_a,
            slot_b,
            state,
        })
    }

    /// The partition of an image slot.
    pub const fn slot(&self, slot: Slot) -> Partition {
        match slot {
            Slot::A => self.slot_a,
            Slot::B => self.slot_b,
        }
    }

    /// The boot-state partition.
    pub const fn state(&self) -> Partition {
        self.state
    }
}

impl core::error::Error for LayoutError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_disjoint_partitions() {
        let l = Layout::new(
            Partition::new(0, 0, 0x1000),
            Partition::new(0, 0x1000, 0x1000),
            Partition::new(0, 0x2000, 0x800),
        )
        .unwrap();
        assert_eq!(l.slot(Slot::B).offset, 0x1000);
        assert_eq!(l.state().size, 0x800);
    }

    #[test]
    fn refuses_overlap_on_the_same_device_only() {
        let a = Partition::new(0, 0, 0x1000);
        let b = Partition::new(0, 0xfff, 0x1000);
        let s = Partition::new(1, 0, 0x800);
        assert_eq!(
            Layout::new(a, b, s),
            Err(LayoutError::Overlap(
                PartitionName::SlotA,
                PartitionName::SlotB
            ))
        );
        // Same offsets on another device are fine.
        let b = Partition::new(1, 0x1000, 0x1000);
        let s = Partition::new(0, 0x1000, 0x800);
        assert!(Layout::new(a, b, s).is_ok());
        let s = Partition::new(0, 0x800, 0x1000);
        assert_eq!(
            Layout::new(a, b, s),
            Err(LayoutError::Overlap(
                PartitionName::SlotA,
                PartitionName::State
            ))
        );
    }

    #[test]
    fn refuses_empty_and_overflowing_partitions() {
        let a = Partition::new(0, 0, 0x1000);
        let b = Partition::new(0, 0x1000, 0x1000);
        assert_eq!(
            Layout::new(a, b, Partition::new(0, 0x2000, 0)),
            Err(LayoutError::Empty(PartitionName::State))
        );
        assert_eq!(
            Layout::new(
                a,
                Partition::new(0, u32::MAX, 2),
                Partition::new(0, 0x2000, 0x800)
            ),
            Err(LayoutError::Overflow(PartitionName::SlotB))
        );
    }

    #[test]
    fn other_slot_flips() {
        assert_eq!(Slot::A.other(), Slot::B);
        assert_eq!(Slot::B.other(), Slot::A);
    }
}
