package api

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Secrets finds the secret of an AccessKeyId.
type Secrets interface {
	Secret(accessKeyID string) (secret string, ok bool)
}

// Verifier checks signature v1 (HMAC-SHA1) exactly as the official SDKs compute it,
// rejects a SignatureNonce seen before and a Timestamp outside the window.
type Verifier struct {
	Secrets Secrets
	// Window is how far a request's Timestamp may be from now, either way.
	Window time.Duration
	// MaxNonces bounds the nonce memory; beyond it requests are refused
	// (Throttling) rather than replays let through.
	MaxNonces int
	Now       func() time.Time

	mu     sync.Mutex
	nonces map[string]time.Time // nonce -> when it may be forgotten
}

// stringToSign is the canonical form the SDK signs: every parameter but Signature,
// sorted and form-encoded, with the SDK's three substitutions, escaped again and
// prefixed with the method and "/".
func stringToSign(method string, params url.Values) string {
	signed := url.Values{}
	for k, v := range params {
		if k != "Signature" && len(v) > 0 {
			signed.Set(k, v[0])
		}
	}
	s := signed.Encode() // sorted by key
	s = strings.ReplaceAll(s, "+", "%20")
	s = strings.ReplaceAll(s, "*", "%2A")
	s = strings.ReplaceAll(s, "%7E", "~")
	return method + "&%2F&" + url.QueryEscape(s)
}

// Sign computes the signature of a request: what a client sends as Signature.
func Sign(method string, params url.Values, secret string) string {
	mac := hmac.New(sha1.New, []byte(secret+"&"))
	mac.Write([]byte(stringToSign(method, params)))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Verify returns the caller's AccessKeyId, or the API error that rejects the request.
// A nonce is remembered only once the signature is valid, so an attacker cannot
// burn a client's nonces.
func (v *Verifier) Verify(method string, params url.Values) (string, *Error) {
	for _, p := range []string{"AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion", "SignatureNonce", "Timestamp"} {
		if params.Get(p) == "" {
			return "", errIncompleteSignature(p)
		}
	}
	if params.Get("SignatureMethod") != "HMAC-SHA1" || params.Get("SignatureVersion") != "1.0" {
		return "", errSignatureMethod
	}
	ts, err := time.Parse("2006-01-02T15:04:05Z", params.Get("Timestamp"))
	if err != nil {
		return "", errTimestampFormat
	}
	now := v.Now()
	if d := now.Sub(ts); d > v.Window || d < -v.Window {
		return "", errTimestampExpired
	}
	keyID := params.Get("AccessKeyId")
	secret, ok := v.Secrets.Secret(keyID)
	if !ok {
		return "", errAccessKeyNotFound
	}
	want := Sign(method, params, secret)
	if subtle.ConstantTimeCompare([]byte(want), []byte(params.Get("Signature"))) != 1 {
		return "", errSignatureMismatch
	}

	v.mu.Lock()
	defer v.mu.Unlock()
	if v.nonces == nil {
		v.nonces = map[string]time.Time{}
	}
	nonce := keyID + "\x00" + params.Get("SignatureNonce")
	if until, seen := v.nonces[nonce]; seen && now.Before(until) {
		return "", errNonceUsed
	}
	if len(v.nonces) >= v.MaxNonces {
		// A nonce can be forgotten once its request's timestamp is out of the
		// window: a replay would be refused as expired anyway.
		for n, until := range v.nonces {
			if !now.Before(until) {
				delete(v.nonces, n)
			}
		}
		if len(v.nonces) >= v.MaxNonces {
			return "", errNonceCacheFull
		}
	}
	v.nonces[nonce] = ts.Add(v.Window)
	return keyID, nil
}
