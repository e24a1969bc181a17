package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/eipgw/eipgw/control/api"
)

// wireRequest is one signed API request as a client put it on the wire, to be sent
// again, unchanged, as an attacker who captured it would.
type wireRequest struct {
	method, url string
	header      http.Header
	body        []byte
}

// errRecorded ends a call whose request recordingTransport kept instead of sending.
var errRecorded = errors.New("recorded, not sent")

// recordingTransport keeps the last request a client signed, and sends nothing.
type recordingTransport struct{ last *wireRequest }

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body.Close()
	}
	r.last = &wireRequest{method: req.Method, url: req.URL.String(), header: req.Header.Clone(), body: body}
	return nil, errRecorded
}

// sign is action's request signed with d's access key (signature api.SignatureV3 or
// api.SignatureHMACSHA1), addressed to d's API, not sent.
func (d *daemon) sign(t *testing.T, signature, action string, params map[string]string) *wireRequest {
	t.Helper()
	var prof struct {
		ID     string `json:"access_key_id"`
		Secret string `json:"access_key_secret"`
	}
	raw, err := os.ReadFile(d.profile)
	if err != nil || json.Unmarshal(raw, &prof) != nil {
		t.Fatalf("profile: %v", err)
	}
	rec := &recordingTransport{}
	c := &api.Client{Endpoint: "https://" + d.listen, AccessKeyID: prof.ID, AccessSecret: prof.Secret, Signature: signature,
		HTTP: &http.Client{Transport: rec}}
	if _, err := c.Call(action, params); !errors.Is(err, errRecorded) || rec.last == nil {
		t.Fatalf("signing %s: %v", action, err)
	}
	return rec.last
}

// send sends req, as it is, to d's API, inside d's namespace (the API's address is
// the same in every gateway's namespace, so the Host the request was signed with
// holds); it returns the reply and its error code, empty for a success.
func (d *daemon) send(t *testing.T, req *wireRequest) (reply map[string]any, code string) {
	t.Helper()
	roots := x509.NewCertPool()
	if pem, err := os.ReadFile(d.cert); err != nil || !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("eipd's certificate: %v", err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.GW.Dial(network, addr, 5*time.Second)
		}}
	defer tr.CloseIdleConnections()
	r, err := http.NewRequest(req.method, req.url, bytes.NewReader(req.body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header = req.header.Clone()
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(r)
	if err != nil {
		t.Fatalf("sending to %s: %v", d.GW.Name, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
		t.Fatalf("%s's reply (HTTP %d): %v", d.GW.Name, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		code, _ = reply["Code"].(string)
		if code == "" {
			t.Fatalf("%s: HTTP %d without a code: %v", d.GW.Name, resp.StatusCode, reply)
		}
	}
	return reply, code
}

// checkReplaysRefused: a signed request, a read or a write, answered by one gateway of
// the cluster is refused by every gateway, with SignatureNonceUsed, when it is sent
// again unchanged; the same write sent to two gateways at once is carried out once.
func checkReplaysRefused(t *testing.T, gws []*daemon) {
	t.Helper()
	first, second := gws[0], gws[1]
	before := len(listEIPs(t, first))
	read := first.sign(t, api.SignatureV3, "DescribeEipAddresses", map[string]string{"PageSize": "100"})
	if _, code := first.send(t, read); code != "" {
		t.Fatalf("a read: %s", code)
	}
	for _, d := range []*daemon{second, first} {
		if _, code := d.send(t, read); code != "SignatureNonceUsed" {
			t.Errorf("the read replayed through %s: %q, want SignatureNonceUsed", d.GW.Name, code)
		}
	}

	allocated := []string{}
	allocate := second.sign(t, api.SignatureHMACSHA1, "AllocateEipAddress", map[string]string{"Bandwidth": "5"})
	reply, code := second.send(t, allocate)
	if code != "" {
		t.Fatalf("an allocation: %s", code)
	}
	allocated = append(allocated, reply["AllocationId"].(string))
	for _, d := range []*daemon{first, second} {
		if _, code := d.send(t, allocate); code != "SignatureNonceUsed" {
			t.Errorf("the allocation replayed through %s: %q, want SignatureNonceUsed", d.GW.Name, code)
		}
	}
	// The same write sent to both gateways at the same moment.
	for round := 0; round < 5; round++ {
		req := first.sign(t, api.SignatureV3, "AllocateEipAddress", map[string]string{"Bandwidth": "5"})
		var wg sync.WaitGroup
		replies, codes := make([]map[string]any, 2), make([]string, 2)
		for i, d := range []*daemon{first, second} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				replies[i], codes[i] = d.send(t, req)
			}()
		}
		wg.Wait()
		done := 0
		for i, c := range codes {
			switch c {
			case "":
				done++
				allocated = append(allocated, replies[i]["AllocationId"].(string))
			case "SignatureNonceUsed":
			default:
				t.Errorf("round %d: %s answered %q", round, gws[i].GW.Name, c)
			}
		}
		if done != 1 {
			t.Errorf("round %d: one allocation sent to both gateways at once was carried out %d times", round, done)
		}
	}
	// Nothing but those allocations happened: each gateway lists them, and no other.
	for _, d := range gws {
		waitFor(t, d.GW.Name+" to list the allocations", 5*time.Second, func() bool {
			listed := listEIPs(t, d)
			for _, id := range allocated {
				if !listed[id] {
					return false
				}
			}
			return true
		})
		if n := len(listEIPs(t, d)); n != before+len(allocated) {
			t.Errorf("%s lists %d EIPs after %d allocations from %d", d.GW.Name, n, len(allocated), before)
		}
	}
	for _, id := range allocated {
		first.must(t, "release-eip-address", "--allocation-id", id)
	}
}

// listEIPs is the set of AllocationIds d describes (up to 100).
func listEIPs(t *testing.T, d *daemon) map[string]bool {
	t.Helper()
	listed := map[string]bool{}
	for _, e := range d.must(t, "describe-eip-addresses", "--page-size", "100")["EipAddresses"].(map[string]any)["EipAddress"].([]any) {
		listed[e.(map[string]any)["AllocationId"].(string)] = true
	}
	return listed
}
