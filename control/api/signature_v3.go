package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Signature V3 (ACS3-HMAC-SHA256), what the cloud's current SDKs sign with: the
// request's method, path, query, chosen headers and the SHA-256 of its body are
// signed with HMAC-SHA256, and sent in an Authorization header. The action and the
// API version travel as x-acs-action and x-acs-version headers.
const (
	v3Algorithm     = "ACS3-HMAC-SHA256"
	v3TimeFormat    = "2006-01-02T15:04:05Z"
	headerAction    = "x-acs-action"
	headerVersion   = "x-acs-version"
	headerDate      = "x-acs-date"
	headerNonce     = "x-acs-signature-nonce"
	headerBodyHash  = "x-acs-content-sha256"
	authorizationV3 = v3Algorithm + " "
)

// v3MustSign are the headers a V3 request must sign: without them its action, time,
// nonce or body could be changed after signing.
var v3MustSign = []string{"host", headerAction, headerVersion, headerDate, headerNonce, headerBodyHash}

// v3Authorization is a parsed Authorization header.
type v3Authorization struct {
	accessKeyID   string
	signedHeaders []string
	signature     string
}

func parseV3Authorization(h string) (v3Authorization, *Error) {
	var a v3Authorization
	for _, part := range strings.Split(strings.TrimPrefix(h, authorizationV3), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			a.accessKeyID = v
		case "SignedHeaders":
			if v != "" {
				a.signedHeaders = strings.Split(v, ";")
			}
		case "Signature":
			a.signature = v
		}
	}
	switch {
	case a.accessKeyID == "":
		return a, errIncompleteSignature("Credential (the AccessKeyId) in the Authorization header")
	case len(a.signedHeaders) == 0:
		return a, errIncompleteSignature("SignedHeaders in the Authorization header")
	case a.signature == "":
		return a, errIncompleteSignature("Signature in the Authorization header")
	}
	return a, nil
}

// verifyV3 checks a request signed with ACS3-HMAC-SHA256 and returns what it asks.
func (v *Verifier) verifyV3(r *http.Request, body []byte) (signedRequest, *Error) {
	auth, apiErr := parseV3Authorization(r.Header.Get("Authorization"))
	if apiErr != nil {
		return signedRequest{}, apiErr
	}
	for _, h := range []string{headerDate, headerNonce, headerBodyHash} {
		if r.Header.Get(h) == "" {
			return signedRequest{}, errIncompleteSignature("the " + h + " header")
		}
	}
	for i, h := range auth.signedHeaders {
		auth.signedHeaders[i] = strings.ToLower(strings.TrimSpace(h))
	}
	for _, h := range v3MustSign {
		if !slices.Contains(auth.signedHeaders, h) {
			return signedRequest{}, errIncompleteSignature("the " + h + " header in SignedHeaders")
		}
	}
	ts, err := time.Parse(v3TimeFormat, r.Header.Get(headerDate))
	if err != nil {
		return signedRequest{}, errTimestampFormat
	}
	now := v.Now()
	if d := now.Sub(ts); d > v.Window || d < -v.Window {
		return signedRequest{}, errTimestampExpired
	}
	secret, ok := v.Secrets.Secret(auth.accessKeyID)
	if !ok {
		return signedRequest{}, errAccessKeyNotFound
	}
	bodyHash := sha256.Sum256(body)
	if !strings.EqualFold(hex.EncodeToString(bodyHash[:]), r.Header.Get(headerBodyHash)) {
		return signedRequest{}, errBodyHashMismatch
	}
	toSign := v3StringToSign(r, auth.signedHeaders)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(toSign))
	if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(mac.Sum(nil))), []byte(strings.ToLower(auth.signature))) != 1 {
		return signedRequest{}, errV3SignatureMismatch(toSign)
	}
	nonce := usedNonce{key: auth.accessKeyID + "\x00" + r.Header.Get(headerNonce), until: ts.Add(v.Window)}
	if apiErr := v.remember(nonce, now); apiErr != nil {
		return signedRequest{}, apiErr
	}
	return signedRequest{accessKeyID: auth.accessKeyID, action: r.Header.Get(headerAction),
		version: r.Header.Get(headerVersion), nonce: nonce}, nil
}

// v3StringToSign is the algorithm's name and the hex SHA-256 of the canonical request:
// method, path, sorted and encoded query, the signed headers (name:values, sorted),
// their names, and the body's hash as the client sent it (checked against the body).
func v3StringToSign(r *http.Request, signedHeaders []string) string {
	signed := sortedCopy(signedHeaders)
	var headers strings.Builder
	for _, name := range signed {
		var vals []string
		if name == "host" {
			vals = []string{r.Host}
		} else {
			for _, v := range r.Header.Values(name) {
				vals = append(vals, strings.TrimSpace(v))
			}
			slices.Sort(vals)
		}
		headers.WriteString(name + ":" + strings.Join(vals, ",") + "\n")
	}
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	canonical := strings.Join([]string{r.Method, path, v3CanonicalQuery(r.URL.Query()), headers.String(),
		strings.Join(signed, ";"), strings.ToLower(r.Header.Get(headerBodyHash))}, "\n")
	sum := sha256.Sum256([]byte(canonical))
	return v3Algorithm + "\n" + hex.EncodeToString(sum[:])
}

// v3CanonicalQuery is the query's parameters sorted by name (then value), each name
// and value percent-encoded as RFC 3986 says (everything but letters, digits and
// -_.~), joined by &.
func v3CanonicalQuery(q url.Values) string {
	keys := slices.Sorted(maps.Keys(q))
	var pairs []string
	for _, k := range keys {
		vs := slices.Clone(q[k])
		slices.Sort(vs)
		for _, v := range vs {
			pairs = append(pairs, percentEncode(k)+"="+percentEncode(v))
		}
	}
	return strings.Join(pairs, "&")
}

func percentEncode(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
