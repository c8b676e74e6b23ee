//! Encryption on the node: its security state (keyring, verification
//! flags, nonce source), the keyring operations, and the glue the send and
//! receive paths of `node.rs` call.
//!
//! The state starts from the [`Config`] the node was built with and is
//! changed at run time here only; the config itself stays as it was given.
//!
//! Invariant: whenever `keyring` is set, `nonces` is set too (building the
//! node and every way to install a keyring check it), so the node never
//! encrypts without a driver-supplied nonce.

use super::Node;
use crate::config::{Config, ConfigError};
use crate::wire::security::NONCE_SIZE;
use crate::wire::{
    self, Decryption, Encryption, EncryptionVersion, Keyring, KeyringError, NonceSource,
    StreamDecoder, StreamDecryption, StreamMessage,
};

/// The node's encryption settings as they are now: the config's at start,
/// then whatever the keyring operations and flag setters made of them.
pub(super) struct SecurityState {
    /// The installed keys; `None` when encryption is off.
    keyring: Option<Keyring>,
    /// Go's `GossipVerifyIncoming`.
    verify_incoming: bool,
    /// Go's `GossipVerifyOutgoing`.
    verify_outgoing: bool,
    /// Where encryption nonces come from; set whenever `keyring` is.
    nonces: Option<NonceSource>,
}

impl SecurityState {
    /// The state a node starts with. A keyring without a nonce source is
    /// refused: the node must never make up nonces itself.
    pub(super) fn new(config: &Config, nonces: Option<NonceSource>) -> Result<Self, ConfigError> {
        if config.keyring.is_some() && nonces.is_none() {
            return Err(ConfigError::NonceSourceRequired);
        }
        Ok(SecurityState {
            keyring: config.keyring.clone(),
            verify_incoming: config.gossip_verify_incoming,
            verify_outgoing: config.gossip_verify_outgoing,
            nonces,
        })
    }
}

impl Node {
    /// Replaces the source of encryption nonces.
    pub fn set_nonce_source(&mut self, nonces: NonceSource) {
        self.security.nonces = Some(nonces);
    }

    /// The keys installed now, if encryption is on. Starts as
    /// [`Config::keyring`] and follows [`Node::add_key`] and friends.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.security.keyring.as_ref()
    }

    /// Whether incoming traffic must be encrypted now (Go's
    /// `GossipVerifyIncoming`). Starts as
    /// [`Config::gossip_verify_incoming`].
    pub fn gossip_verify_incoming(&self) -> bool {
        self.security.verify_incoming
    }

    /// Whether we encrypt what we send when we have a keyring (Go's
    /// `GossipVerifyOutgoing`). Starts as
    /// [`Config::gossip_verify_outgoing`].
    pub fn gossip_verify_outgoing(&self) -> bool {
        self.security.verify_outgoing
    }

    /// Installs `key` (16, 24 or 32 bytes). Without a keyring this creates
    /// one with `key` as primary, which turns encryption on at once as far
    /// as the `gossip_verify_*` flags say: to migrate a running cluster
    /// turn both flags off first. A duplicate is a no-op. Needs a nonce
    /// source.
    pub fn add_key(&mut self, key: &[u8]) -> Result<(), KeyringError> {
        if self.security.nonces.is_none() {
            return Err(KeyringError::NoNonceSource);
        }
        match &mut self.security.keyring {
            Some(k) => k.add_key(key),
            None => {
                self.security.keyring = Some(Keyring::new(key)?);
                Ok(())
            }
        }
    }

    /// Makes an installed key the primary (the one we encrypt with).
    pub fn use_key(&mut self, key: &[u8]) -> Result<(), KeyringError> {
        self.security
            .keyring
            .as_mut()
            .ok_or(KeyringError::NoKeyring)?
            .use_key(key)
    }

    /// Removes an installed key other than the primary.
    pub fn remove_key(&mut self, key: &[u8]) -> Result<(), KeyringError> {
        self.security
            .keyring
            .as_mut()
            .ok_or(KeyringError::NoKeyring)?
            .remove_key(key)
    }

    /// Replaces the whole keyring; `None` turns encryption off. Installing
    /// one needs a nonce source.
    pub fn set_keyring(&mut self, keyring: Option<Keyring>) -> Result<(), KeyringError> {
        if keyring.is_some() && self.security.nonces.is_none() {
            return Err(KeyringError::NoNonceSource);
        }
        self.security.keyring = keyring;
        Ok(())
    }

    /// Sets Go's `GossipVerifyIncoming` (see [`Config::gossip_verify_incoming`]).
    /// Streams already being read keep the setting they started with.
    pub fn set_gossip_verify_incoming(&mut self, on: bool) {
        self.security.verify_incoming = on;
    }

    /// Sets Go's `GossipVerifyOutgoing` (see [`Config::gossip_verify_outgoing`]).
    pub fn set_gossip_verify_outgoing(&mut self, on: bool) {
        self.security.verify_outgoing = on;
    }

    /// Whether what we send now is encrypted (a keyring and outgoing
    /// verification).
    pub fn encrypts_outgoing(&self) -> bool {
        self.security.keyring.is_some() && self.security.verify_outgoing
    }

    /// A decoder for one stream, set up from our configuration (label,
    /// label check, limits, keys and incoming verification). `reply`:
    /// false for a stream a peer dialed to us, true for the reply on a
    /// stream we dialed (no label header expected; our label is still the
    /// additional data of its encryption). Drivers should read every
    /// stream with this.
    pub fn stream_decoder(&self, reply: bool) -> StreamDecoder {
        let (label, skip): (&[u8], bool) = if reply {
            (&[], false)
        } else {
            (&self.config.label, self.config.skip_inbound_label_check)
        };
        let dec = StreamDecoder::new(label, skip, self.limits);
        match &self.security.keyring {
            Some(k) => dec.with_decryption(StreamDecryption {
                keyring: k.clone(),
                verify_incoming: self.security.verify_incoming,
                label: if reply {
                    self.config.label.clone()
                } else {
                    Vec::new()
                },
            }),
            None => dec,
        }
    }

    /// Version and fresh nonce for one outgoing message, when encrypting.
    pub(super) fn seal_params(&mut self) -> Option<(EncryptionVersion, [u8; NONCE_SIZE])> {
        if !self.encrypts_outgoing() {
            return None;
        }
        let nonce = self
            .security
            .nonces
            .as_mut()
            .expect("a keyring is only ever installed together with a nonce source")
            .nonce();
        Some((
            EncryptionVersion::for_protocol(self.config.protocol_version),
            nonce,
        ))
    }

    /// The encryption of one outgoing message, from [`Node::seal_params`].
    pub(super) fn encryption(
        &self,
        seal: Option<(EncryptionVersion, [u8; NONCE_SIZE])>,
    ) -> Option<Encryption<'_>> {
        let (version, nonce) = seal?;
        Some(Encryption {
            keyring: self.security.keyring.as_ref()?,
            version,
            nonce,
        })
    }

    /// How incoming packets are decrypted.
    pub(super) fn decryption(&self) -> Option<Decryption<'_>> {
        Some(Decryption {
            keyring: self.security.keyring.as_ref()?,
            verify_incoming: self.security.verify_incoming,
        })
    }

    /// A whole outgoing stream: with our label header when we dial, none in
    /// a reply; encrypted (our label as additional data) when configured.
    pub(super) fn encode_stream_out(&mut self, msg: &StreamMessage, dial: bool) -> Vec<u8> {
        let seal = self.seal_params();
        let label = &self.config.label;
        let header: &[u8] = if dial { label } else { &[] };
        let mut out = Vec::new();
        // Only an over-long label (ruled out by config validation) or a
        // payload over 4 GiB (ruled out by the limits) fails.
        let _ = wire::encode_stream_with(
            msg,
            header,
            label,
            self.config.enable_compression,
            self.encryption(seal),
            &mut out,
        );
        out
    }
}
