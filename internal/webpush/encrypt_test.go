package webpush

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"testing"
)

// RFC 8291 Appendix A (and §5): the keys, salt and message published with
// the standard. Matching the message byte for byte checks the derivation
// against the spec, not against our own Decrypt.
const (
	rfcPlaintext = "When I grow up, I want to be a watermelon"
	rfcASPrivate = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
	rfcASPublic  = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
	rfcUAPrivate = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
	rfcUAPublic  = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
	rfcSalt      = "DGv6ra1nlYgDCS1FRnbzlw"
	rfcAuth      = "BTBZMqHH6r4Tts7J_aSIgg"
	rfcMessage   = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
)

func mustKey(t *testing.T, s string) []byte {
	t.Helper()
	b, err := DecodeKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEncryptMatchesRFC8291AppendixA(t *testing.T) {
	as, err := ecdh.P256().NewPrivateKey(mustKey(t, rfcASPrivate))
	if err != nil {
		t.Fatal(err)
	}
	if got := b64.EncodeToString(as.PublicKey().Bytes()); got != rfcASPublic {
		t.Fatalf("application server public key %s, want %s", got, rfcASPublic)
	}
	body, err := encrypt([]byte(rfcPlaintext), mustKey(t, rfcUAPublic), mustKey(t, rfcAuth), as, mustKey(t, rfcSalt), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := b64.EncodeToString(body); got != rfcMessage {
		t.Fatalf("encrypted message\n got %s\nwant %s", got, rfcMessage)
	}
}

func TestDecryptRFC8291AppendixA(t *testing.T) {
	ua, err := ecdh.P256().NewPrivateKey(mustKey(t, rfcUAPrivate))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := Decrypt(mustKey(t, rfcMessage), ua, mustKey(t, rfcAuth))
	if err != nil {
		t.Fatal(err)
	}
	if string(pt) != rfcPlaintext {
		t.Fatalf("decrypted %q, want %q", pt, rfcPlaintext)
	}
	// A flipped bit anywhere in the ciphertext must fail the GCM tag.
	bad := mustKey(t, rfcMessage)
	bad[len(bad)-20] ^= 1
	if _, err := Decrypt(bad, ua, mustKey(t, rfcAuth)); err == nil {
		t.Fatal("tampered message decrypted")
	}
}

func TestEncryptRoundTripPadded(t *testing.T) {
	ua, _ := ecdh.P256().GenerateKey(rand.Reader)
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	for _, n := range []int{0, 1, 127, 128, 1000, MaxPayload} {
		msg := bytes.Repeat([]byte{'x'}, n)
		body, err := Encrypt(msg, ua.PublicKey().Bytes(), auth)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if len(body) > recordSize {
			t.Fatalf("%d bytes: body %d > %d", n, len(body), recordSize)
		}
		got, err := Decrypt(body, ua, auth)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("%d bytes: round trip %v", n, err)
		}
	}
	if _, err := Encrypt(make([]byte, MaxPayload+1), ua.PublicKey().Bytes(), auth); err == nil {
		t.Fatal("oversized payload accepted")
	}
}
