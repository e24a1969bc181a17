package api

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

type staticSecrets map[string]string

func (s staticSecrets) Secret(id string) (string, bool) { v, ok := s[id]; return v, ok }

var testNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func newVerifier() *Verifier {
	return &Verifier{Secrets: staticSecrets{"testid": "testsecret"}, Window: 15 * time.Minute, MaxNonces: 100,
		Now: func() time.Time { return testNow }}
}

func signedParams(nonce string, at time.Time) url.Values {
	p := url.Values{}
	for k, v := range map[string]string{
		"Action": "DescribeEipAddresses", "Version": "2016-04-28", "Format": "JSON", "RegionId": "cn-hangzhou",
		"AccessKeyId": "testid", "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "SignatureType": "",
		"SignatureNonce": nonce, "Timestamp": at.Format("2006-01-02T15:04:05Z"), "Name": "a b*c~d",
	} {
		p.Set(k, v)
	}
	p.Set("Signature", Sign(http.MethodPost, p, "testsecret"))
	return p
}

// A vector worked by hand from the SDK's algorithm, so a change to the canonical
// form shows as a failure and not as a client and server agreeing on a new mistake.
func TestStringToSignMatchesTheSDKForm(t *testing.T) {
	p := url.Values{"Action": {"X"}, "Name": {"a b*c~d"}, "SignatureType": {""}, "Signature": {"ignored"}}
	want := "GET&%2F&Action%3DX%26Name%3Da%2520b%252Ac~d%26SignatureType%3D"
	if got := stringToSign("GET", p); got != want {
		t.Errorf("string to sign\n got %s\nwant %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	v := newVerifier()
	if id, err := verifyParams(v, http.MethodPost, signedParams("n1", testNow)); err != nil || id != "testid" {
		t.Fatalf("a good request: %v, %v", id, err)
	}
	cases := []struct {
		name   string
		params func() url.Values
		code   string
		status int
	}{
		{"replayed nonce", func() url.Values { return signedParams("n1", testNow) }, "SignatureNonceUsed", 400},
		{"unsigned", func() url.Values { p := signedParams("n2", testNow); p.Del("Signature"); return p }, "IncompleteSignature", 400},
		{"no access key", func() url.Values { p := signedParams("n3", testNow); p.Del("AccessKeyId"); return p }, "IncompleteSignature", 400},
		{"bad signature", func() url.Values { p := signedParams("n4", testNow); p.Set("Signature", "AAAA"); return p }, "SignatureDoesNotMatch", 400},
		{"parameter changed after signing", func() url.Values { p := signedParams("n5", testNow); p.Set("Name", "other"); return p }, "SignatureDoesNotMatch", 400},
		{"stale timestamp", func() url.Values { return signedParams("n6", testNow.Add(-16*time.Minute)) }, "InvalidTimeStamp.Expired", 400},
		{"future timestamp", func() url.Values { return signedParams("n7", testNow.Add(16*time.Minute)) }, "InvalidTimeStamp.Expired", 400},
		{"bad timestamp", func() url.Values { p := signedParams("n8", testNow); p.Set("Timestamp", "yesterday"); return p }, "InvalidTimeStamp.Format", 400},
		{"unknown access key", func() url.Values { p := signedParams("n9", testNow); p.Set("AccessKeyId", "nobody"); return p }, "InvalidAccessKeyId.NotFound", 404},
		{"other method", func() url.Values {
			p := signedParams("n10", testNow)
			p.Set("SignatureMethod", "HMAC-SHA256")
			return p
		}, "InvalidSignatureMethod", 400},
	}
	for _, c := range cases {
		_, err := verifyParams(v, http.MethodPost, c.params())
		if err == nil || err.Code != c.code || err.Status != c.status {
			t.Errorf("%s: %v, want %s (%d)", c.name, err, c.code, c.status)
		}
	}
	// A request signed for GET does not pass as POST.
	p := signedParams("n11", testNow)
	if _, err := verifyParams(v, http.MethodGet, p); err == nil || err.Code != "SignatureDoesNotMatch" {
		t.Errorf("method changed: %v", err)
	}
	// A rejected request did not burn its nonce.
	if _, err := verifyParams(v, http.MethodPost, signedParams("n4", testNow)); err != nil {
		t.Errorf("a nonce whose request was rejected: %v", err)
	}
}

func TestNonceMemoryIsBounded(t *testing.T) {
	v := newVerifier()
	v.MaxNonces = 2
	for _, n := range []string{"a", "b"} {
		if _, err := verifyParams(v, http.MethodPost, signedParams(n, testNow)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := verifyParams(v, http.MethodPost, signedParams("c", testNow)); err == nil || err.Code != "Throttling" {
		t.Fatalf("a third nonce with room for two: %v", err)
	}
	// Once the first two are out of the window they can be forgotten.
	later := testNow.Add(16 * time.Minute)
	v.Now = func() time.Time { return later }
	if _, err := verifyParams(v, http.MethodPost, signedParams("c", later)); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// verifyParams checks an HMAC-SHA1 request by its parameters, as verify does for a
// request without an Authorization header.
func verifyParams(v *Verifier, method string, params url.Values) (string, *Error) {
	signed, err := v.verifyHMACSHA1(method, params)
	return signed.accessKeyID, err
}
