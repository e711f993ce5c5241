//! Encryption of secrets at rest (provider tokens): XChaCha20-Poly1305 with a random nonce per
//! value, the key from configuration. Stored as `nonce || ciphertext`.
//!
//! Each ciphertext is bound to where it is stored — the identity's provider and subject and which
//! token it is ([`TokenSlot`]) — as AEAD associated data: a ciphertext copied to another row or
//! column does not decrypt there, so one user's token cannot be made to act for another.

use chacha20poly1305::{
    aead::{Aead, AeadCore, KeyInit, OsRng, Payload},
    XChaCha20Poly1305, XNonce,
};

/// The key for tokens at rest. Never printed.
#[derive(Clone)]
pub struct TokenCipher(XChaCha20Poly1305);

impl std::fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCipher(<redacted>)")
    }
}

/// Which token of an identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

/// Where a token is stored: the identity (provider, subject) and which token.
#[derive(Clone, Copy, Debug)]
pub struct TokenSlot<'a> {
    pub provider: &'a str,
    pub subject: &'a str,
    pub kind: TokenKind,
}

impl<'a> TokenSlot<'a> {
    pub fn access(provider: &'a str, subject: &'a str) -> Self {
        Self {
            provider,
            subject,
            kind: TokenKind::Access,
        }
    }

    pub fn refresh(provider: &'a str, subject: &'a str) -> Self {
        Self {
            provider,
            subject,
            kind: TokenKind::Refresh,
        }
    }

    /// The associated data: a version, then each part with its length, so no two slots share it.
    fn associated_data(&self) -> Vec<u8> {
        let kind = match self.kind {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        };
        let mut ad = b"personaflux-token-v1".to_vec();
        for part in [self.provider, self.subject, kind] {
            ad.extend((part.len() as u64).to_be_bytes());
            ad.extend(part.as_bytes());
        }
        ad
    }
}

impl TokenCipher {
    pub const KEY_LEN: usize = 32;
    const NONCE_LEN: usize = 24;

    pub fn new(key: &[u8]) -> Option<Self> {
        (key.len() == Self::KEY_LEN).then(|| Self(XChaCha20Poly1305::new(key.into())))
    }

    /// Encrypts `plaintext` for storage in `slot`.
    pub fn encrypt(&self, plaintext: &str, slot: &TokenSlot) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = slot.associated_data();
        let mut out = nonce.to_vec();
        out.extend(
            self.0
                .encrypt(
                    &nonce,
                    Payload {
                        msg: plaintext.as_bytes(),
                        aad: &aad,
                    },
                )
                .expect("encryption of an in-memory buffer cannot fail"),
        );
        out
    }

    /// The plaintext stored in `slot`; `None` if it was tampered with, made with another key, or
    /// belongs to another slot.
    pub fn decrypt(&self, stored: &[u8], slot: &TokenSlot) -> Option<String> {
        if stored.len() < Self::NONCE_LEN {
            return None;
        }
        let (nonce, ct) = stored.split_at(Self::NONCE_LEN);
        let aad = slot.associated_data();
        let pt = self
            .0
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .ok()?;
        String::from_utf8(pt).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_tampering() {
        let c = TokenCipher::new(&[7u8; 32]).unwrap();
        let slot = TokenSlot::access("google", "alice");
        let a = c.encrypt("ya29.secret-token", &slot);
        let b = c.encrypt("ya29.secret-token", &slot);
        assert_ne!(a, b, "a fresh nonce every time");
        assert!(!a.windows(6).any(|w| w == b"secret"));
        assert_eq!(c.decrypt(&a, &slot).as_deref(), Some("ya29.secret-token"));
        let mut t = a.clone();
        *t.last_mut().unwrap() ^= 1;
        assert_eq!(c.decrypt(&t, &slot), None);
        assert_eq!(
            TokenCipher::new(&[1u8; 32]).unwrap().decrypt(&a, &slot),
            None,
            "another key"
        );
        assert!(TokenCipher::new(&[0u8; 16]).is_none());
        assert_eq!(c.decrypt(&a[..10], &slot), None);
    }

    #[test]
    fn a_ciphertext_decrypts_only_in_its_own_slot() {
        let c = TokenCipher::new(&[7u8; 32]).unwrap();
        let a = c.encrypt("token", &TokenSlot::access("secondme", "1"));
        assert!(c.decrypt(&a, &TokenSlot::access("secondme", "1")).is_some());
        for other in [
            TokenSlot::access("secondme", "2"),
            TokenSlot::access("secondme", "11"),
            TokenSlot::access("github", "1"),
            TokenSlot::refresh("secondme", "1"),
            // The parts are length-prefixed: moving a character between them is another slot.
            TokenSlot::access("secondme1", ""),
            TokenSlot::access("second", "me1"),
        ] {
            assert_eq!(c.decrypt(&a, &other), None, "{other:?}");
        }
        // A value encrypted before tokens were bound to their slot does not decrypt.
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut unbound = nonce.to_vec();
        unbound.extend(c.0.encrypt(&nonce, b"token".as_slice()).unwrap());
        assert_eq!(
            c.decrypt(&unbound, &TokenSlot::access("secondme", "1")),
            None
        );
    }
}
