//! The vault's text formats (`hive_crypto::vault`): a sealed value as stored
//! (`Sealed::from_text`, `v1.<key id>.<nonce>.<ciphertext>`) opened by a keyring, and a value
//! imported from the seeds (`open_imported`, `ivHex:tagHex:cipherHex`, what
//! `hive_core::vault::Secrets::import` hands it with `MasterKey::from_hex` of the key given).
//! The first byte picks the format.
//!
//! Properties: a sealed value that parses prints back to text that parses to the same value,
//! and opening it under a key that did not seal it fails (never a panic); what the keyring
//! seals opens back to the same bytes under the same context only.

#![no_main]

use hive_crypto::vault::{Context, Keyring, MasterKey, Purpose, Sealed, open_imported};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// A made-up master key (never a deployment's).
const MASTER: [u8; 32] = [0x42; 32];
const ROW: Context<'static> = Context {
    table: "secrets",
    row_id: "row-1",
};

fn keyring() -> &'static Keyring {
    static RING: OnceLock<Keyring> = OnceLock::new();
    RING.get_or_init(|| {
        let master = MasterKey::from_bytes(&MASTER);
        let Ok(mut ring) = Keyring::new(&master.derive(Purpose::Vault)) else {
            panic!("no keyring");
        };
        if ring.generate(1).is_err() || ring.set_active(1).is_err() {
            panic!("no data key");
        }
        ring
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match mode % 3 {
        0 => {
            let Ok(sealed) = Sealed::from_text(&text) else {
                return;
            };
            let again = Sealed::from_text(&sealed.to_text());
            assert_eq!(again.as_ref(), Ok(&sealed));
            assert!(keyring().open(&sealed, &ROW).is_err());
        }
        1 => {
            let _ = MasterKey::from_hex(&text);
            let _ = open_imported(&MasterKey::from_bytes(&MASTER), &text);
        }
        _ => {
            let ring = keyring();
            let Ok(sealed) = ring.seal(rest, &ROW) else {
                panic!("sealing failed");
            };
            let Ok(parsed) = Sealed::from_text(&sealed.to_text()) else {
                panic!("a sealed value's text does not parse");
            };
            let opened = ring.open(&parsed, &ROW).map(|plain| plain.to_vec());
            assert_eq!(opened.as_deref(), Ok(rest));
            let elsewhere = Context {
                table: "secrets",
                row_id: "row-2",
            };
            assert!(ring.open(&parsed, &elsewhere).is_err());
        }
    }
});
