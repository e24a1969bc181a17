package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"
)

// v3Request is a request as today's SDKs (darabonba-openapi, signature V3) build it:
// parameters in the query, action and version in headers, signed with
// ACS3-HMAC-SHA256. The signing follows the SDK's own steps (names as they are,
// values escaped), not eipd's code, so the two are checked against each other.
type v3Request struct {
	method, host, action string
	query                url.Values
	body                 string
	contentType          string
	date                 time.Time
	nonce                string
	headers              map[string]string // extra headers, signed
}

func (q v3Request) build(t *testing.T, endpoint, keyID, secret string) *http.Request {
	t.Helper()
	bodyHash := sha256.Sum256([]byte(q.body))
	h := map[string]string{"host": q.host, "x-acs-action": q.action, "x-acs-version": APIVersion,
		"x-acs-date": q.date.UTC().Format("2006-01-02T15:04:05Z"), "x-acs-signature-nonce": q.nonce,
		"x-acs-content-sha256": hex.EncodeToString(bodyHash[:])}
	if q.contentType != "" {
		h["content-type"] = q.contentType
	}
	for k, v := range q.headers {
		h[k] = v
	}
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	var canonHeaders strings.Builder
	for _, k := range names {
		canonHeaders.WriteString(k + ":" + strings.TrimSpace(h[k]) + "\n")
	}
	keys := make([]string, 0, len(q.query))
	for k := range q.query {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var pairs []string
	for _, k := range keys {
		pairs = append(pairs, k+"="+url.QueryEscape(q.query.Get(k)))
	}
	canonQuery := strings.NewReplacer("+", "%20", "*", "%2A", "%7E", "~").Replace(strings.Join(pairs, "&"))
	canonical := strings.Join([]string{q.method, "/", canonQuery, canonHeaders.String(), strings.Join(names, ";"),
		h["x-acs-content-sha256"]}, "\n")
	sum := sha256.Sum256([]byte(canonical))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("ACS3-HMAC-SHA256\n" + hex.EncodeToString(sum[:])))
	req, err := http.NewRequest(q.method, endpoint+"/?"+canonQuery, strings.NewReader(q.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		if k != "host" {
			req.Header.Set(k, v)
		}
	}
	req.Host = q.host
	req.Header.Set("Authorization", "ACS3-HMAC-SHA256 Credential="+keyID+",SignedHeaders="+strings.Join(names, ";")+
		",Signature="+hex.EncodeToString(mac.Sum(nil)))
	return req
}

// send sends req and returns the status and the decoded reply.
func send(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("reply is not JSON: %v", err)
	}
	return resp.StatusCode, m
}

// TestSignatureV3: requests signed as today's SDKs sign are served, with parameters in
// the query or a form body; every tampered, replayed or incomplete one is refused
// with the cloud's code and changes nothing.
func TestSignatureV3(t *testing.T) {
	a := newTestAPI(t)
	host := strings.TrimPrefix(a.srv.URL, "http://")
	a.ok(t, "RegisterInstance", "InstanceId", "i-1", "VpcId", "vpc-1", "PrivateIpAddress", "10.0.1.11")
	n := 0
	fresh := func(action string, query url.Values) v3Request {
		n++
		return v3Request{method: http.MethodPost, host: host, action: action, query: query, date: time.Now(),
			nonce: "v3-nonce-" + strings.Repeat("x", n)}
	}
	status, m := send(t, fresh("AllocateEipAddress", url.Values{"RegionId": {"eipgw-1"}, "Name": {"web-1.prod_a"}, "Description": {"a b*c~d/é"}}).
		build(t, a.srv.URL, "testid", "testsecret"))
	if status != http.StatusOK || m["AllocationId"] == nil {
		t.Fatalf("a V3 request with its parameters in the query: %d %v", status, m)
	}
	id := m["AllocationId"].(string)
	form := fresh("AssociateEipAddress", url.Values{"RegionId": {"eipgw-1"}})
	form.body = url.Values{"AllocationId": {id}, "InstanceId": {"i-1"}}.Encode()
	form.contentType = "application/x-www-form-urlencoded"
	if status, m := send(t, form.build(t, a.srv.URL, "testid", "testsecret")); status != http.StatusOK {
		t.Fatalf("a V3 request with its parameters in a form body: %d %v", status, m)
	}

	before, applied := a.snapshot(t), a.writes
	release := func() v3Request { return fresh("ReleaseEipAddress", url.Values{"AllocationId": {id}}) }
	replayed := release()
	replayed.nonce = form.nonce
	cases := []struct {
		name string
		req  func() *http.Request
		code string
	}{
		{"wrong secret", func() *http.Request { return release().build(t, a.srv.URL, "testid", "not-the-secret") }, "SignatureDoesNotMatch"},
		{"unknown key", func() *http.Request { return release().build(t, a.srv.URL, "nobody", "testsecret") }, "InvalidAccessKeyId.NotFound"},
		{"tampered query", func() *http.Request {
			r := release().build(t, a.srv.URL, "testid", "testsecret")
			r.URL.RawQuery = "AllocationId=eip-other"
			return r
		}, "SignatureDoesNotMatch"},
		{"tampered body", func() *http.Request {
			q := release()
			q.body, q.contentType = "AllocationId="+id, "application/x-www-form-urlencoded"
			r := q.build(t, a.srv.URL, "testid", "testsecret")
			r.Body = http.NoBody
			r.ContentLength = 0
			return r
		}, "SignatureDoesNotMatch"},
		{"tampered signed header", func() *http.Request {
			r := release().build(t, a.srv.URL, "testid", "testsecret")
			r.Header.Set("x-acs-action", "DescribeEipAddresses")
			return r
		}, "SignatureDoesNotMatch"},
		{"replayed nonce", func() *http.Request { return replayed.build(t, a.srv.URL, "testid", "testsecret") }, "SignatureNonceUsed"},
		{"an hour off", func() *http.Request {
			q := release()
			q.date = time.Now().Add(-time.Hour)
			return q.build(t, a.srv.URL, "testid", "testsecret")
		}, "InvalidTimeStamp.Expired"},
		{"no x-acs-content-sha256", func() *http.Request {
			r := release().build(t, a.srv.URL, "testid", "testsecret")
			r.Header.Del("x-acs-content-sha256")
			return r
		}, "IncompleteSignature"},
		{"the date not signed", func() *http.Request {
			r := release().build(t, a.srv.URL, "testid", "testsecret")
			auth := r.Header.Get("Authorization")
			r.Header.Set("Authorization", strings.Replace(auth, "x-acs-date;", "", 1))
			return r
		}, "IncompleteSignature"},
		{"another algorithm", func() *http.Request {
			r := release().build(t, a.srv.URL, "testid", "testsecret")
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "ACS3-HMAC-SHA256", "ACS3-HMAC-SM3", 1))
			return r
		}, "InvalidSignatureMethod"},
	}
	for _, c := range cases {
		status, m := send(t, c.req())
		if status != http.StatusBadRequest && status != http.StatusNotFound || m["Code"] != c.code || m["RequestId"] == nil {
			t.Errorf("%s: %d %v, want %s", c.name, status, m, c.code)
		}
		if after := a.snapshot(t); after != before || a.writes != applied {
			t.Errorf("%s changed the state or reached the dataplane", c.name)
		}
	}

	// A mismatch says what eipd signed, so a client can compare its own.
	req := release().build(t, a.srv.URL, "testid", "not-the-secret")
	_, m = send(t, req)
	if msg, _ := m["Message"].(string); !strings.Contains(msg, "server string to sign is:ACS3-HMAC-SHA256\n") {
		t.Errorf("the mismatch message does not carry the string to sign: %q", msg)
	}
	// The good request, once, releases the EIP.
	if status, m := send(t, release().build(t, a.srv.URL, "testid", "testsecret")); status != http.StatusBadRequest || m["Code"] != "IncorrectEipStatus" {
		// Still associated: the reference refuses a release of an associated EIP.
		t.Errorf("releasing an associated EIP: %d %v", status, m)
	}
}
