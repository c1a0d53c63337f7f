//! Build script: links the application for one slot. Images execute in place, so a build
//! for slot A and one for slot B differ (see bootloader/firmware/README.md): `OTTER_APP_SLOT`
//! (`A` or `B`) says which, and this writes the `memory.x` that puts the vector table at
//! slot + `APP_VECTOR_OFFSET` (the payload's first 1024 - 128 bytes are padding).

use std::error::Error;
use std::path::PathBuf;
use std::{env, fs};

#[allow(dead_code)] // only the slot addresses are used here
mod flash_map {
    include!("../board/flash_map.rs");
}

use flash_map::{APP_VECTOR_OFFSET, NOR_BASE, RAM_BASE, RAM_LEN, SLOT_A, SLOT_B, SLOT_LEN};

/// Room left at the end of the slot for the image's signature block.
const SIGNATURE_LEN: u32 = 64;

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-env-changed=OTTER_APP_SLOT");
    println!("cargo:rerun-if-changed=../board/flash_map.rs");
    let slot = env::var("OTTER_APP_SLOT").unwrap_or_default();
    let offset = match slot.as_str() {
        "A" => SLOT_A,
        "B" => SLOT_B,
        _ => {
            return Err(format!(
                "set OTTER_APP_SLOT to A or B (found {slot:?}): the application executes in \
                 place and is linked for the slot it is installed in"
            )
            .into());
        }
    };
    let origin = NOR_BASE + offset + APP_VECTOR_OFFSET;
    let length = SLOT_LEN - APP_VECTOR_OFFSET - SIGNATURE_LEN;
    let memory = format!(
        "/* Written by build.rs for slot {slot}. */\n\
         MEMORY\n{{\n  FLASH : ORIGIN = {origin:#010x}, LENGTH = {length:#x}\n  \
         RAM   : ORIGIN = {RAM_BASE:#010x}, LENGTH = {RAM_LEN:#x}\n}}\n"
    );
    let out = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR not set")?);
    fs::write(out.join("memory.x"), memory)?;
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-env=OTTER_APP_SLOT={slot}");
    Ok(())
}
