//! Encryption of secrets at rest (provider tokens): XChaCha20-Poly1305 with a random nonce per
//! value, the key from configuration. Stored as `nonce || ciphertext`.

use chacha20poly1305::{
    aead::{Aead, AeadCore, KeyInit, OsRng},
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

impl TokenCipher {
    pub const KEY_LEN: usize = 32;

    pub fn new(key: &[u8]) -> Option<Self> {
        (key.len() == Self::KEY_LEN).then(|| Self(XChaCha20Poly1305::new(key.into())))
    }

    pub fn encrypt(&self, plaintext: &str) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        out.extend(
            self.0
                .encrypt(&nonce, plaintext.as_bytes())
                .expect("encryption of an in-memory buffer cannot fail"),
        );
        out
    }

    pub fn decrypt(&self, stored: &[u8]) -> Option<String> {
        if stored.len() < 24 {
            return None;
        }
        let (nonce, ct) = stored.split_at(24);
        let pt = self.0.decrypt(XNonce::from_slice(nonce), ct).ok()?;
        String::from_utf8(pt).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_tampering() {
        let c = TokenCipher::new(&[7u8; 32]).unwrap();
        let a = c.encrypt("ya29.secret-token");
        let b = c.encrypt("ya29.secret-token");
        assert_ne!(a, b, "a fresh nonce every time");
        assert!(!a.windows(6).any(|w| w == b"secret"));
        assert_eq!(c.decrypt(&a).as_deref(), Some("ya29.secret-token"));
        let mut t = a.clone();
        *t.last_mut().unwrap() ^= 1;
        assert_eq!(c.decrypt(&t), None);
        assert_eq!(
            TokenCipher::new(&[1u8; 32]).unwrap().decrypt(&a),
            None,
            "another key"
        );
        assert!(TokenCipher::new(&[0u8; 16]).is_none());
    }
}
