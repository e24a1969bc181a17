package api

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Secrets finds the secret of an AccessKeyId.
type Secrets interface {
	Secret(accessKeyID string) (secret string, ok bool)
}

// Verifier checks a request's signature exactly as the official SDKs compute it, in
// either method the cloud documents for RPC APIs: ACS3-HMAC-SHA256 (signature V3,
// today's SDKs) and HMAC-SHA1 (signature V2, the legacy SDKs); and rejects a nonce
// seen before and a time outside the window.
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

// signedRequest is what a verified request carries: who sent it, what it asks for,
// and its nonce, to be remembered.
type signedRequest struct {
	accessKeyID     string
	action, version string
	nonce           usedNonce
}

// verify checks r's signature, in whichever method the request is signed, with body
// the request's body (read already, so that V3 can hash it) and r.Form parsed.
func (v *Verifier) verify(r *http.Request, body []byte) (signedRequest, *Error) {
	auth := r.Header.Get("Authorization")
	switch {
	case strings.HasPrefix(auth, authorizationV3):
		return v.verifyV3(r, body)
	case auth != "":
		scheme, _, _ := strings.Cut(auth, " ")
		return signedRequest{}, errUnsupportedSignature(scheme)
	}
	return v.verifyHMACSHA1(r.Method, r.Form)
}

// verifyHMACSHA1 checks a request signed with HMAC-SHA1 in its parameters (the
// cloud's signature V2, SignatureVersion 1.0).
func (v *Verifier) verifyHMACSHA1(method string, params url.Values) (signedRequest, *Error) {
	for _, p := range []string{"AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion", "SignatureNonce", "Timestamp"} {
		if params.Get(p) == "" {
			return signedRequest{}, errIncompleteSignature(p)
		}
	}
	if params.Get("SignatureMethod") != "HMAC-SHA1" || params.Get("SignatureVersion") != "1.0" {
		return signedRequest{}, errSignatureMethod
	}
	ts, err := time.Parse("2006-01-02T15:04:05Z", params.Get("Timestamp"))
	if err != nil {
		return signedRequest{}, errTimestampFormat
	}
	now := v.Now()
	if d := now.Sub(ts); d > v.Window || d < -v.Window {
		return signedRequest{}, errTimestampExpired
	}
	keyID := params.Get("AccessKeyId")
	secret, ok := v.Secrets.Secret(keyID)
	if !ok {
		return signedRequest{}, errAccessKeyNotFound
	}
	want := Sign(method, params, secret)
	if subtle.ConstantTimeCompare([]byte(want), []byte(params.Get("Signature"))) != 1 {
		return signedRequest{}, errSignatureMismatch
	}
	nonce := usedNonce{key: keyID + "\x00" + params.Get("SignatureNonce"), until: ts.Add(v.Window)}
	if apiErr := v.remember(nonce, now); apiErr != nil {
		return signedRequest{}, apiErr
	}
	return signedRequest{accessKeyID: keyID, action: params.Get("Action"), version: params.Get("Version"), nonce: nonce}, nil
}

// remember records a verified request's nonce, or refuses it if seen before: a nonce
// is remembered only once the signature is valid, so an attacker cannot burn a
// client's nonces. Both signature methods share the memory.
func (v *Verifier) remember(nonce usedNonce, now time.Time) *Error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.nonces == nil {
		v.nonces = map[string]time.Time{}
	}
	if until, seen := v.nonces[nonce.key]; seen && now.Before(until) {
		return errNonceUsed
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
			return errNonceCacheFull
		}
	}
	v.nonces[nonce.key] = nonce.until
	return nil
}
