package api

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/eipgw/eipgw/control/model"
)

// Client calls the API with signed requests, as the cloud's SDKs do: signature V3
// (ACS3-HMAC-SHA256) as today's SDKs, or HMAC-SHA1 (signature V2) as the legacy ones.
type Client struct {
	Endpoint     string // e.g. https://127.0.0.1:8443
	AccessKeyID  string
	AccessSecret string
	RegionID     string
	// Signature is SignatureV3 (also when empty) or SignatureHMACSHA1.
	Signature string
	HTTP      *http.Client
	Now       func() time.Time
}

// The signature methods a Client signs with.
const (
	SignatureV3       = "v3"
	SignatureHMACSHA1 = "hmac-sha1"
)

// Call sends one action and returns the decoded reply; an API error comes back as *Error.
func (c *Client) Call(action string, params map[string]string) (map[string]any, error) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	form := url.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	if c.RegionID != "" && form.Get("RegionId") == "" {
		form.Set("RegionId", c.RegionID)
	}
	var req *http.Request
	var err error
	switch c.Signature {
	case "", SignatureV3:
		req, err = c.signedV3(action, form, now().UTC())
	case SignatureHMACSHA1:
		req, err = c.signedHMACSHA1(action, form, now().UTC())
	default:
		err = fmt.Errorf("signature method %q: want %s or %s", c.Signature, SignatureV3, SignatureHMACSHA1)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", action, err)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", action, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: read reply: %w", action, err)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("%s: reply is not JSON (HTTP %d): %.200s", action, resp.StatusCode, body)
	}
	if resp.StatusCode != http.StatusOK {
		code, _ := m["Code"].(string)
		msg, _ := m["Message"].(string)
		return m, &model.Error{Status: resp.StatusCode, Code: code, Message: msg}
	}
	return m, nil
}

func (c *Client) url() string { return strings.TrimRight(c.Endpoint, "/") + "/" }

// signedV3 is a request as today's SDKs send one: the parameters in a form body,
// the action, version, time, nonce and body hash in headers, all of them signed.
func (c *Client) signedV3(action string, form url.Values, now time.Time) (*http.Request, error) {
	body := []byte(form.Encode())
	req, err := http.NewRequest(http.MethodPost, c.url(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	bodyHash := sha256.Sum256(body)
	for k, v := range map[string]string{
		"content-type": "application/x-www-form-urlencoded", headerAction: action, headerVersion: APIVersion,
		headerDate: now.Format(v3TimeFormat), headerNonce: requestID(), headerBodyHash: hex.EncodeToString(bodyHash[:]),
	} {
		req.Header.Set(k, v)
	}
	signed := append([]string{"content-type"}, v3MustSign...)
	mac := hmac.New(sha256.New, []byte(c.AccessSecret))
	mac.Write([]byte(v3StringToSign(req, signed)))
	req.Header.Set("Authorization", authorizationV3+"Credential="+c.AccessKeyID+",SignedHeaders="+
		strings.Join(sortedCopy(signed), ";")+",Signature="+hex.EncodeToString(mac.Sum(nil)))
	return req, nil
}

// signedHMACSHA1 is a request as the legacy SDKs send one: everything in the form,
// signed with HMAC-SHA1.
func (c *Client) signedHMACSHA1(action string, form url.Values, now time.Time) (*http.Request, error) {
	for k, v := range map[string]string{
		"Action": action, "Version": APIVersion, "Format": "JSON", "AccessKeyId": c.AccessKeyID,
		"SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "SignatureType": "",
		"SignatureNonce": requestID(), "Timestamp": now.Format("2006-01-02T15:04:05Z"),
	} {
		form.Set(k, v)
	}
	form.Set("Signature", Sign(http.MethodPost, form, c.AccessSecret))
	req, err := http.NewRequest(http.MethodPost, c.url(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req, nil
}
