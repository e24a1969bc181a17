package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/eipgw/eipgw/control/model"
)

// Client calls the API with signed requests, as the cloud's SDKs do.
type Client struct {
	Endpoint     string // e.g. http://127.0.0.1:8080
	AccessKeyID  string
	AccessSecret string
	RegionID     string
	HTTP         *http.Client
	Now          func() time.Time
}

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
	for k, v := range map[string]string{
		"Action": action, "Version": APIVersion, "Format": "JSON", "AccessKeyId": c.AccessKeyID,
		"SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "SignatureType": "",
		"SignatureNonce": requestID(), "Timestamp": now().UTC().Format("2006-01-02T15:04:05Z"),
	} {
		form.Set(k, v)
	}
	if c.RegionID != "" && form.Get("RegionId") == "" {
		form.Set("RegionId", c.RegionID)
	}
	form.Set("Signature", Sign(http.MethodPost, form, c.AccessSecret))
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Post(strings.TrimRight(c.Endpoint, "/")+"/", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
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
