// Package webpush is the Web Push protocol and nothing else: a message
// encrypted per RFC 8291 (aes128gcm, RFC 8188), signed with VAPID (RFC 8292)
// and posted to a push service (RFC 8030), whose answer is classified. It
// is written on Go's standard library (crypto/ecdh, crypto/hkdf,
// crypto/ecdsa, AES-GCM): about the size of webpush-go, without its
// untagged data-race fix (console.md §3.1), and checked byte for byte
// against RFC 8291's published example. It knows nothing of alerts, NATS
// or who the phones belong to (internal/notify and internal/notify/phones).
package webpush

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// recordSize is the aes128gcm record size carehub announces (RFC 8188 §2):
// a push message is a single record (RFC 8291 §4), and 4096 is what every
// push service accepts.
const recordSize = 4096

// MaxPayload is the largest plaintext that fits the single record: 4096
// minus the 16-byte GCM tag and the 1-byte delimiter, minus the 86-byte
// header that travels in the same body (RFC 8291 §4: push services accept at
// least 4096 bytes of body).
const MaxPayload = recordSize - 16 - 1 - 86

// padTo is the granularity to which payloads are padded, so that the body's
// length tells an observer little about which alert it carries.
const padTo = 128

// ErrPayloadTooLarge is returned for a plaintext over MaxPayload.
var ErrPayloadTooLarge = errors.New("webpush: payload larger than one 4096-byte record")

// Encrypt encrypts plaintext for the user agent whose P-256 public key
// (uncompressed, 65 bytes) and 16-byte auth secret are given, with a fresh
// ephemeral key and salt, padded to a multiple of padTo.
func Encrypt(plaintext, uaPublic, authSecret []byte) ([]byte, error) {
	as, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	pad := 0
	if r := (len(plaintext) + 1) % padTo; r != 0 {
		pad = padTo - r
	}
	if len(plaintext)+1+pad > MaxPayload+1 {
		pad = max(0, MaxPayload-len(plaintext))
	}
	return encrypt(plaintext, uaPublic, authSecret, as, salt, pad)
}

// encrypt is Encrypt with the ephemeral key, salt and padding given, so the
// RFC 8291 Appendix A example can be reproduced exactly.
func encrypt(plaintext, uaPublic, authSecret []byte, as *ecdh.PrivateKey, salt []byte, pad int) ([]byte, error) {
	if len(plaintext) > MaxPayload {
		return nil, ErrPayloadTooLarge
	}
	if len(authSecret) != 16 {
		return nil, fmt.Errorf("webpush: auth secret is %d bytes, want 16", len(authSecret))
	}
	ua, err := ecdh.P256().NewPublicKey(uaPublic)
	if err != nil {
		return nil, fmt.Errorf("webpush: p256dh key: %w", err)
	}
	secret, err := as.ECDH(ua)
	if err != nil {
		return nil, err
	}
	asPub := as.PublicKey().Bytes()
	cek, nonce, err := deriveKeys(secret, authSecret, uaPublic, asPub, salt)
	if err != nil {
		return nil, err
	}
	gcm, err := newGCM(cek)
	if err != nil {
		return nil, err
	}
	// RFC 8188 §2: the last record's plaintext is data, a 0x02 delimiter,
	// then zero padding.
	rec := make([]byte, len(plaintext)+1+pad)
	copy(rec, plaintext)
	rec[len(plaintext)] = 2
	// Header (RFC 8188 §2.1): salt(16) ‖ rs(4) ‖ idlen(1) ‖ keyid, where the
	// keyid is the sender's ephemeral public key (RFC 8291 §4).
	out := make([]byte, 0, 21+len(asPub)+len(rec)+gcm.Overhead())
	out = append(out, salt...)
	out = binary.BigEndian.AppendUint32(out, recordSize)
	out = append(out, byte(len(asPub)))
	out = append(out, asPub...)
	return gcm.Seal(out, nonce, rec, nil), nil
}

// deriveKeys is RFC 8291 §3.3–3.4: the ECDH secret and the auth secret give
// the input keying material, which with the salt gives the content
// encryption key and the nonce (RFC 8188 §2.2–2.3).
func deriveKeys(ecdhSecret, authSecret, uaPublic, asPublic, salt []byte) (cek, nonce []byte, err error) {
	info := make([]byte, 0, 14+65+65)
	info = append(info, "WebPush: info\x00"...)
	info = append(info, uaPublic...)
	info = append(info, asPublic...)
	ikm, err := hkdf.Key(sha256.New, ecdhSecret, authSecret, string(info), 32)
	if err != nil {
		return nil, nil, err
	}
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		return nil, nil, err
	}
	if cek, err = hkdf.Expand(sha256.New, prk, "Content-Encoding: aes128gcm\x00", 16); err != nil {
		return nil, nil, err
	}
	if nonce, err = hkdf.Expand(sha256.New, prk, "Content-Encoding: nonce\x00", 12); err != nil {
		return nil, nil, err
	}
	return cek, nonce, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

// Decrypt is the user agent's side (RFC 8291 §3.4): it opens a body
// Encrypt produced with the receiver's private key and auth secret. carehub
// itself never needs it; webpushtest's fake push service does.
func Decrypt(body []byte, ua *ecdh.PrivateKey, authSecret []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("webpush: body shorter than the aes128gcm header")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if len(body) < 21+idlen {
		return nil, errors.New("webpush: truncated key id")
	}
	asPub, err := ecdh.P256().NewPublicKey(body[21 : 21+idlen])
	if err != nil {
		return nil, fmt.Errorf("webpush: key id is not a P-256 key: %w", err)
	}
	ct := body[21+idlen:]
	if uint32(len(ct)) > rs {
		return nil, errors.New("webpush: more than one record (RFC 8291 §4)")
	}
	secret, err := ua.ECDH(asPub)
	if err != nil {
		return nil, err
	}
	cek, nonce, err := deriveKeys(secret, authSecret, ua.PublicKey().Bytes(), asPub.Bytes(), salt)
	if err != nil {
		return nil, err
	}
	gcm, err := newGCM(cek)
	if err != nil {
		return nil, err
	}
	pt, err := gcm.Open(nil, nonce, ct, nil)
	if err != nil {
		return nil, err
	}
	i := len(pt) - 1
	for i >= 0 && pt[i] == 0 {
		i--
	}
	if i < 0 || pt[i] != 2 {
		return nil, errors.New("webpush: no last-record delimiter (RFC 8188 §2)")
	}
	return pt[:i], nil
}
