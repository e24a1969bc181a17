package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eipgw/eipgw/control/model"
	"github.com/eipgw/eipgw/control/store"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	prommodel "github.com/prometheus/common/model"
)

type testAPI struct {
	srv, ops  *httptest.Server
	server    *Server
	st        *store.Store
	client    *Client
	writes    int
	applyFail error // what the next AfterWrite returns
	stale     bool  // what StaleState says
}

func newTestAPI(t *testing.T) *testAPI {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a := &testAPI{st: st}
	s := &Server{
		Verifier: &Verifier{Secrets: staticSecrets{"testid": "testsecret"}, Window: 15 * time.Minute, MaxNonces: 10000, Now: time.Now},
		Model:    &model.Service{Region: "eipgw-1", Pool: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}},
		Store:    st, Metrics: NewMetrics(), Now: time.Now,
		AfterWrite: func(string) error { a.writes++; return a.applyFail },
		StaleState: func() bool { return a.stale },
	}
	a.server = s
	a.srv = httptest.NewServer(s)
	t.Cleanup(a.srv.Close)
	a.ops = httptest.NewServer(OpsHandler(s.Metrics, nil))
	t.Cleanup(a.ops.Close)
	a.client = &Client{Endpoint: a.srv.URL, AccessKeyID: "testid", AccessSecret: "testsecret", RegionID: "eipgw-1"}
	return a
}

// snapshot is the whole state, to show a refused request changed nothing.
func (a *testAPI) snapshot(t *testing.T) string {
	var b strings.Builder
	_ = a.st.View(func(tx model.Tx) error {
		for _, k := range model.Kinds {
			_ = tx.ForEach(k, func(id string, v []byte) error { fmt.Fprintf(&b, "%s/%s=%s\n", k, id, v); return nil })
		}
		return nil
	})
	return b.String()
}

func (a *testAPI) ok(t *testing.T, action string, kv ...string) map[string]any {
	t.Helper()
	p := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = kv[i+1]
	}
	m, err := a.client.Call(action, p)
	if err != nil {
		t.Fatalf("%s: %v", action, err)
	}
	if m["RequestId"] == "" {
		t.Errorf("%s: no RequestId", action)
	}
	return m
}

// rawPost sends a form as is, for requests no well-behaved client would send.
func (a *testAPI) rawPost(t *testing.T, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.PostForm(a.srv.URL, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Code, Message, RequestId string }
	_ = jsonDecode(resp, &body)
	if body.RequestId == "" {
		t.Errorf("error reply without RequestId")
	}
	return resp.StatusCode, body.Code
}

func signedForm(action string, kv map[string]string, nonce string, at time.Time) url.Values {
	f := url.Values{}
	for k, v := range kv {
		f.Set(k, v)
	}
	for k, v := range map[string]string{"Action": action, "Version": APIVersion, "Format": "JSON", "AccessKeyId": "testid",
		"SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "SignatureType": "", "SignatureNonce": nonce,
		"Timestamp": at.UTC().Format("2006-01-02T15:04:05Z")} {
		f.Set(k, v)
	}
	f.Set("Signature", Sign(http.MethodPost, f, "testsecret"))
	return f
}

func TestBadInputChangesNothing(t *testing.T) {
	a := newTestAPI(t)
	a.ok(t, "RegisterInstance", "InstanceId", "i-1", "VpcId", "vpc-1", "PrivateIpAddress", "10.0.1.11")
	alloc := a.ok(t, "AllocateEipAddress")
	id := alloc["AllocationId"].(string)
	a.ok(t, "AssociateEipAddress", "AllocationId", id, "InstanceId", "i-1")
	pkg := a.ok(t, "CreateCommonBandwidthPackage", "Bandwidth", "10")["BandwidthPackageId"].(string)
	free := a.ok(t, "AllocateEipAddress")["AllocationId"].(string)
	prepaid := a.ok(t, "AllocateEipAddress", "InstanceChargeType", "PrePaid")["AllocationId"].(string)
	before := a.snapshot(t)
	writes := a.writes

	unsigned := signedForm("AllocateEipAddress", nil, "u1", time.Now())
	unsigned.Del("Signature")
	badSig := signedForm("AllocateEipAddress", nil, "u2", time.Now())
	badSig.Set("Signature", "bm9wZQ==")
	replayed := signedForm("DescribeEipAddresses", nil, "u3", time.Now())
	if status, code := a.rawPost(t, replayed); status != 200 {
		t.Fatalf("first use of a nonce: %d %s", status, code)
	}
	for _, c := range []struct {
		name   string
		form   url.Values
		status int
		code   string
	}{
		{"unsigned", unsigned, 400, "IncompleteSignature"},
		{"bad signature", badSig, 400, "SignatureDoesNotMatch"},
		{"replayed nonce", replayed, 400, "SignatureNonceUsed"},
		{"stale timestamp", signedForm("AllocateEipAddress", nil, "u4", time.Now().Add(-time.Hour)), 400, "InvalidTimeStamp.Expired"},
		{"unknown action", signedForm("MakeCoffee", nil, "u5", time.Now()), 404, "InvalidAction.NotFound"},
		{"other version", func() url.Values {
			f := signedForm("AllocateEipAddress", map[string]string{"Version": "2014-05-26"}, "u6", time.Now())
			f.Set("Version", "2014-05-26")
			f.Set("Signature", Sign(http.MethodPost, f, "testsecret"))
			return f
		}(), 400, "InvalidVersion"},
		{"malformed bandwidth", signedForm("AllocateEipAddress", map[string]string{"Bandwidth": "lots"}, "u7", time.Now()), 400, "InvalidBandwidth.ValueNotSupported"},
		{"malformed address", signedForm("AllocateEipAddress", map[string]string{"IpAddress": "300.1.1.1"}, "u8", time.Now()), 400, "InvalidParameter"},
		{"associating twice", signedForm("AssociateEipAddress", map[string]string{"AllocationId": id, "InstanceId": "i-1"}, "u9", time.Now()), 400, "IncorrectEipStatus"},
		{"releasing while associated", signedForm("ReleaseEipAddress", map[string]string{"AllocationId": id}, "u10", time.Now()), 400, "IncorrectEipStatus"},
		{"dry run", signedForm("AllocateEipAddress", map[string]string{"DryRun": "true"}, "u11", time.Now()), 400, "DryRunOperation"},
		{"missing parameter", signedForm("AssociateEipAddress", map[string]string{"AllocationId": id}, "u12", time.Now()), 400, "MissingParameter"},
		{"a list of EIPs one of which cannot join", signedForm("AddCommonBandwidthPackageIps", map[string]string{"BandwidthPackageId": pkg,
			"IpInstanceIds.1": free, "IpInstanceIds.2": prepaid}, "u13", time.Now()), 400, "OperationUnsupported.PrePaidEip"},
	} {
		status, code := a.rawPost(t, c.form)
		if status != c.status || code != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, status, code, c.status, c.code)
		}
	}
	if after := a.snapshot(t); after != before {
		t.Errorf("refused requests changed the state:\nbefore %s\nafter  %s", before, after)
	}
	if a.writes != writes {
		t.Errorf("refused requests triggered %d reconciles", a.writes-writes)
	}
}

func TestClientErrorsCarryTheCode(t *testing.T) {
	a := newTestAPI(t)
	_, err := a.client.Call("ReleaseEipAddress", map[string]string{"AllocationId": "eip-none"})
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Code != "InvalidAllocationId.NotFound" || apiErr.Status != 404 {
		t.Fatalf("release of nothing: %v", err)
	}
	m := a.ok(t, "DescribeEipAddresses")
	if m["TotalCount"].(float64) != 0 {
		t.Errorf("describe of nothing: %v", m)
	}
}

// scrape reads the ops listener's /metrics and parses it as Prometheus does.
func (a *testAPI) scrape(t *testing.T) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := http.Get(a.ops.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(prommodel.LegacyValidation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, raw)
	}
	return string(raw), families
}

func TestMetrics(t *testing.T) {
	a := newTestAPI(t)
	a.ok(t, "AllocateEipAddress")
	_, _ = a.client.Call("ReleaseEipAddress", map[string]string{"AllocationId": "eip-none"})
	text, _ := a.scrape(t)
	for _, want := range []string{
		`eipgw_api_requests_total{action="AllocateEipAddress",code="OK",status="200"} 1`,
		`eipgw_api_requests_total{action="ReleaseEipAddress",code="InvalidAllocationId.NotFound",status="404"} 1`,
		`eipgw_api_request_duration_seconds_count{action="AllocateEipAddress"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s:\n%s", want, text)
		}
	}
	if resp, err := http.Get(a.srv.URL + "/metrics"); err == nil {
		var body struct{ Code string }
		_ = jsonDecode(resp, &body)
		if resp.StatusCode == http.StatusOK || body.Code == "" {
			t.Errorf("the API listener serves /metrics: HTTP %d", resp.StatusCode)
		}
	}
}

// TestMetricsCannotBePoisoned: unauthenticated requests with made-up or malformed
// actions, and signed ones with unknown actions, add no label values, and the
// exposition still parses.
func TestMetricsCannotBePoisoned(t *testing.T) {
	a := newTestAPI(t)
	for i := 0; i < 50; i++ {
		resp, err := http.Get(fmt.Sprintf("%s/?Action=Junk%d", a.srv.URL, i))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for _, q := range []string{"Action=Bad%01Name", "Action=%22%7D%20evil%7B", "Action=a%0Ab"} {
		resp, err := http.Get(a.srv.URL + "/?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	_, _ = a.client.Call("FrobnicateEipAddress", nil)
	text, families := a.scrape(t)
	for _, m := range families["eipgw_api_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "action" && l.GetValue() != actionUnauthenticated && l.GetValue() != actionUnknown {
				t.Errorf("a label value from the client: %q", l.GetValue())
			}
		}
	}
	if strings.Contains(text, "Junk") || strings.Contains(text, "Frobnicate") {
		t.Errorf("client-chosen actions in the exposition:\n%s", text)
	}
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

// TestWriteNotAppliedIsNotOK: when the dataplane fails to apply a committed write, the
// reply is 503, never 200, and the status the API reports stays the true one.
func TestWriteNotAppliedIsNotOK(t *testing.T) {
	a := newTestAPI(t)
	a.ok(t, "RegisterInstance", "InstanceId", "i-1", "VpcId", "vpc-1", "PrivateIpAddress", "10.0.1.11")
	id := a.ok(t, "AllocateEipAddress")["AllocationId"].(string)
	a.applyFail = errors.New("map full")
	_, err := a.client.Call("AssociateEipAddress", map[string]string{"AllocationId": id, "InstanceId": "i-1"})
	var apiErr *model.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable || apiErr.Code != "ServiceUnavailable" {
		t.Fatalf("associate with a failing dataplane: %v", err)
	}
	a.applyFail = nil
	m := a.ok(t, "DescribeEipAddresses", "AllocationId", id)
	if got := fmt.Sprint(m["EipAddresses"]); !strings.Contains(got, "Associating") {
		t.Errorf("after a write the dataplane did not carry, DescribeEipAddresses says %s", got)
	}
}

// TestNoncesSurviveARestart: a captured request, a write or a read, replayed against a
// new server on the same store (eipd after a restart) is refused as a used nonce.
func TestNoncesSurviveARestart(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	serve := func() (*httptest.Server, func()) {
		v := &Verifier{Secrets: staticSecrets{"testid": "testsecret"}, Window: 15 * time.Minute, MaxNonces: 10000, Now: time.Now}
		if _, err := v.RestoreNonces(st); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		j := &NonceJournal{Store: st, Interval: 10 * time.Millisecond}
		j.Start(ctx, func(err error) { t.Error(err) })
		srv := httptest.NewServer(&Server{Verifier: v, Store: st, Metrics: NewMetrics(), Now: time.Now, Nonces: j,
			Model: &model.Service{Region: "eipgw-1", Pool: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}})
		return srv, func() { srv.Close(); cancel(); j.Wait() }
	}
	write := signedForm("AllocateEipAddress", nil, "write-nonce", time.Now())
	read := signedForm("DescribeEipAddresses", nil, "read-nonce", time.Now())
	srv, stop := serve()
	for _, f := range []url.Values{write, read} {
		resp, err := http.PostForm(srv.URL, f)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("first use: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	stop()
	srv, stop = serve()
	defer stop()
	for name, f := range map[string]url.Values{"write": write, "read": read} {
		resp, err := http.PostForm(srv.URL, f)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Code string }
		_ = jsonDecode(resp, &body)
		if body.Code != "SignatureNonceUsed" {
			t.Errorf("the %s replayed after a restart: HTTP %d %q, want SignatureNonceUsed", name, resp.StatusCode, body.Code)
		}
	}
}

// TestStoredNonces: nonces are stored in the order they expire (one commit's nonces
// then share a page); those a file stored before, keyed by the nonce alone, are
// restored as well; expired ones of either layout are forgotten at start.
func TestStoredNonces(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)
	expiries := map[string]time.Time{
		"testid\x00late":  now.Add(14 * time.Minute),
		"testid\x00soon":  now.Add(time.Minute),
		"testid\x00gone":  now.Add(-time.Minute),
		"other\x00middle": now.Add(7 * time.Minute),
	}
	if err := st.Update(func(tx model.Tx) error {
		for key, until := range expiries {
			if err := putNonce(tx, usedNonce{key: key, until: until}); err != nil {
				return err
			}
		}
		// As a file written before the expiry prefix holds them.
		for key, until := range map[string]time.Time{"testid\x00older": now.Add(3 * time.Minute), "testid\x00old-gone": now.Add(-time.Second)} {
			if err := tx.Put(model.KindNonce, key, []byte(until.Format(time.RFC3339Nano))); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var stored []string
	if err := st.View(func(tx model.Tx) error {
		return tx.ForEach(model.KindNonce, func(k string, _ []byte) error {
			stored = append(stored, nonceOfRecordKey(k))
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"testid\x00gone", "testid\x00soon", "other\x00middle", "testid\x00late", "testid\x00old-gone", "testid\x00older"}
	if strings.Join(stored, ",") != strings.Join(want, ",") {
		t.Errorf("stored in the order %q, want expiry order then the older layout: %q", stored, want)
	}

	v := &Verifier{Secrets: staticSecrets{"testid": "testsecret"}, Window: 15 * time.Minute, MaxNonces: 100, Now: func() time.Time { return now }}
	if n, err := v.RestoreNonces(st); err != nil || n != 4 {
		t.Fatalf("restored %d nonces (%v), want the 4 live ones", n, err)
	}
	for _, key := range []string{"testid\x00late", "testid\x00soon", "other\x00middle", "testid\x00older"} {
		if apiErr := v.remember(usedNonce{key: key, until: now.Add(time.Minute)}, now); apiErr != errNonceUsed {
			t.Errorf("nonce %q after the restore: %v, want SignatureNonceUsed", key, apiErr)
		}
	}
	if apiErr := v.remember(usedNonce{key: "testid\x00fresh", until: now.Add(time.Minute)}, now); apiErr != nil {
		t.Errorf("a new nonce after the restore: %v", apiErr)
	}
	left := 0
	if err := st.View(func(tx model.Tx) error {
		return tx.ForEach(model.KindNonce, func(string, []byte) error { left++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if left != 4 {
		t.Errorf("%d nonces stored after the restore, want the 4 live ones (expired ones of both layouts forgotten)", left)
	}
}

// TestSlowClientsAreBounded: a client that sends its headers or body too slowly, or
// keeps an idle connection, is disconnected; connections beyond the limit wait; an
// oversized request gets a JSON error with a Code.
func TestSlowClientsAreBounded(t *testing.T) {
	a := newTestAPI(t)
	limits := Limits{ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: 400 * time.Millisecond,
		WriteTimeout: time.Second, IdleTimeout: 800 * time.Millisecond, MaxConnections: 2}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewHTTPServer(a.srv.Config.Handler, limits)
	go func() { _ = srv.Serve(Listener(ln, limits, nil)) }()
	defer srv.Close()
	addr := ln.Addr().String()
	closedWithin := func(name string, c net.Conn, d time.Duration) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(d))
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Errorf("%s: the server still holds the connection after %v", name, d)
				}
				return
			}
		}
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	slowHeader := dial()
	fmt.Fprintf(slowHeader, "POST / HTTP/1.1\r\nHost: eipd\r\n")
	closedWithin("slow headers", slowHeader, 2*time.Second)
	slowHeader.Close()

	slowBody := dial()
	fmt.Fprintf(slowBody, "POST / HTTP/1.1\r\nHost: eipd\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nAction=")
	closedWithin("slow body", slowBody, 2*time.Second)
	slowBody.Close()

	idle := dial()
	fmt.Fprintf(idle, "GET /?Action=DescribeEipAddresses HTTP/1.1\r\nHost: eipd\r\n\r\n")
	closedWithin("idle keep-alive", idle, 2*time.Second)
	idle.Close()

	// Two connections held open: a third waits for one of them.
	held := []net.Conn{dial(), dial()}
	for _, c := range held {
		fmt.Fprintf(c, "GET /?Action=X HTTP/1.1\r\nHost: eipd\r\n\r\n")
	}
	time.Sleep(50 * time.Millisecond)
	third := dial()
	defer third.Close()
	fmt.Fprintf(third, "GET /?Action=X HTTP/1.0\r\nHost: eipd\r\n\r\n")
	_ = third.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _ := third.Read(make([]byte, 16)); n > 0 {
		t.Error("a connection past the limit was served while two were held")
	}
	for _, c := range held {
		c.Close()
	}
	_ = third.SetReadDeadline(time.Now().Add(2 * time.Second))
	if reply, err := io.ReadAll(third); err != nil || !strings.Contains(string(reply), "RequestId") {
		t.Errorf("the waiting connection was not served once one closed: %q, %v", reply, err)
	}

	// What Go's server answers by itself, before any handler: JSON with a Code too.
	for _, c := range []struct {
		request string
		status  int
		code    string
	}{
		{"GET /?Action=X HTTP/1.1\r\nHost: eipd\r\nX-Pad: " + strings.Repeat("a", 2<<20) + "\r\n\r\n", 431, "RequestHeaderFieldsTooLarge"},
		{"NONSENSE\r\n\r\n", 400, "BadRequest"},
	} {
		conn := dial()
		go func() { _, _ = io.WriteString(conn, c.request) }()
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("reply to %.20q: %v", c.request, err)
		}
		var body struct{ Code, RequestId string }
		if err := jsonDecode(resp, &body); err != nil || resp.StatusCode != c.status || body.Code != c.code || body.RequestId == "" {
			t.Errorf("reply to %.20q: HTTP %d %+v (%v), want %d %s in JSON", c.request, resp.StatusCode, body, err, c.status, c.code)
		}
		conn.Close()
	}

	// Oversized requests: JSON errors with a Code.
	resp, err := http.Get(a.srv.URL + "/?Action=DescribeEipAddresses&Pad=" + strings.Repeat("a", 70<<10))
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Code, RequestId string }
	_ = jsonDecode(resp, &body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || body.Code != "RequestHeaderFieldsTooLarge" {
		t.Errorf("a 70 KiB request line: HTTP %d %+v", resp.StatusCode, body)
	}
	resp, err = http.Post(a.srv.URL, "application/x-www-form-urlencoded", strings.NewReader("Action=X&Pad="+strings.Repeat("a", 2<<20)))
	if err != nil {
		t.Fatal(err)
	}
	body.Code = ""
	_ = jsonDecode(resp, &body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || body.Code != "RequestEntityTooLarge" {
		t.Errorf("a 2 MiB body: HTTP %d %+v", resp.StatusCode, body)
	}
}

// TestFormatXML: Format=XML is answered in XML as the cloud shapes it (the action's
// name and "Response" as the root, a list's items repeated under the list's member
// name), errors too; JSON stays the default, and another format is refused.
func TestFormatXML(t *testing.T) {
	a := newTestAPI(t)
	a.ok(t, "AllocateEipAddress")
	a.ok(t, "AllocateEipAddress")
	post := func(form url.Values) (*http.Response, []byte) {
		resp, err := http.PostForm(a.srv.URL, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	form := signedForm("DescribeEipAddresses", map[string]string{"RegionId": "eipgw-1"}, "xml-1", time.Now())
	form.Set("Format", "XML")
	form.Set("Signature", Sign(http.MethodPost, form, "testsecret"))
	resp, body := post(form)
	var described struct {
		XMLName      xml.Name `xml:"DescribeEipAddressesResponse"`
		RequestId    string
		TotalCount   int
		EipAddresses struct {
			EipAddress []struct{ AllocationId, IpAddress, Status string }
		}
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/xml") {
		t.Fatalf("XML reply: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if err := xml.Unmarshal(body, &described); err != nil || described.RequestId == "" || described.TotalCount != 2 ||
		len(described.EipAddresses.EipAddress) != 2 || described.EipAddresses.EipAddress[0].Status != "Available" {
		t.Fatalf("XML reply does not read as the cloud's: %v %+v\n%s", err, described, body)
	}
	bad := signedForm("ReleaseEipAddress", map[string]string{"AllocationId": "eip-nonexistent"}, "xml-2", time.Now())
	bad.Set("Format", "xml")
	bad.Set("Signature", Sign(http.MethodPost, bad, "testsecret"))
	resp, body = post(bad)
	var apiErr struct {
		XMLName                          xml.Name `xml:"Error"`
		RequestId, HostId, Code, Message string
	}
	if err := xml.Unmarshal(body, &apiErr); err != nil || resp.StatusCode == http.StatusOK || apiErr.Code == "" || apiErr.RequestId == "" {
		t.Fatalf("XML error: %d %v %+v\n%s", resp.StatusCode, err, apiErr, body)
	}
	yaml := signedForm("DescribeEipAddresses", nil, "xml-3", time.Now())
	yaml.Set("Format", "YAML")
	yaml.Set("Signature", Sign(http.MethodPost, yaml, "testsecret"))
	if status, code := a.rawPost(t, yaml); status != http.StatusBadRequest || code != "InvalidParameter.Format" {
		t.Errorf("Format=YAML: %d %s", status, code)
	}
}

// TestStaleStateHeader: while the server says the state may be stale (a cluster's
// store out of reach), a read's reply carries the header and a write's does not.
func TestStaleStateHeader(t *testing.T) {
	a := newTestAPI(t)
	post := func(action, nonce string) *http.Response {
		t.Helper()
		resp, err := http.PostForm(a.srv.URL, signedForm(action, nil, nonce, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if h := post("DescribeEipAddresses", "n1").Header.Get(StaleStateHeader); h != "" {
		t.Errorf("a current read carries %s: %q", StaleStateHeader, h)
	}
	a.stale = true
	if resp := post("DescribeEipAddresses", "n2"); resp.StatusCode != http.StatusOK || resp.Header.Get(StaleStateHeader) != "true" {
		t.Errorf("a stale read: status %d, %s %q", resp.StatusCode, StaleStateHeader, resp.Header.Get(StaleStateHeader))
	}
	if h := post("AllocateEipAddress", "n3").Header.Get(StaleStateHeader); h != "" {
		t.Errorf("a write carries %s: %q", StaleStateHeader, h)
	}
}

// sharedNonces is a cluster's shared store, for nonces only, in memory; unreachable
// makes it fail as etcd out of reach does.
type sharedNonces struct {
	mu          sync.Mutex
	created     map[string]string
	claims      int
	unreachable bool
}

func (s *sharedNonces) CreateOnce(kind, id string, v []byte) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.claims++
	if s.unreachable {
		return false, fmt.Errorf("shared store: %w", model.ErrStoreUnavailable)
	}
	k := kind + "/" + id
	if _, ok := s.created[k]; ok {
		return false, nil
	}
	s.created[k] = string(v)
	return true, nil
}

// TestSharedNonces: two gateways with a shared store each refuse a request the other
// answered (a read, a write), and change nothing for it; with the shared store out of
// reach a read is served, flagged stale, and a write is refused with
// ServiceUnavailable.StateStore; a read while the state is known stale does not wait
// for the shared store.
func TestSharedNonces(t *testing.T) {
	shared := &sharedNonces{created: map[string]string{}}
	a, b := newTestAPI(t), newTestAPI(t)
	a.server.Shared, b.server.Shared = shared, shared
	post := func(to *testAPI, form url.Values) (*http.Response, string) {
		t.Helper()
		resp, err := http.PostForm(to.srv.URL, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Code string }
		_ = jsonDecode(resp, &body)
		return resp, body.Code
	}
	now := time.Now()
	read := signedForm("DescribeEipAddresses", nil, "r1", now)
	if resp, code := post(a, read); resp.StatusCode != http.StatusOK {
		t.Fatalf("a read: %d %s", resp.StatusCode, code)
	}
	for name, gw := range map[string]*testAPI{"the other gateway": b, "the same gateway": a} {
		if _, code := post(gw, read); code != "SignatureNonceUsed" {
			t.Errorf("the read replayed through %s: %q", name, code)
		}
	}
	write := signedForm("AllocateEipAddress", nil, "w1", now)
	if resp, code := post(b, write); resp.StatusCode != http.StatusOK {
		t.Fatalf("a write: %d %s", resp.StatusCode, code)
	}
	untouched := a.snapshot(t)
	if _, code := post(a, write); code != "SignatureNonceUsed" {
		t.Errorf("the write replayed through the other gateway: %q", code)
	}
	if got := a.snapshot(t); got != untouched {
		t.Errorf("the refused replay changed the state:\n%s\nwas\n%s", got, untouched)
	}
	if b.writes != 1 || a.writes != 0 {
		t.Errorf("writes carried out: %d and %d, want 1 and 0", a.writes, b.writes)
	}
	// Each claimed nonce is stored once, in the shared store, under its expiry.
	if len(shared.created) != 2 {
		t.Errorf("the shared store holds %d nonces, want 2: %v", len(shared.created), shared.created)
	}

	shared.unreachable = true
	resp, code := post(a, signedForm("DescribeEipAddresses", nil, "r2", now))
	if resp.StatusCode != http.StatusOK || resp.Header.Get(StaleStateHeader) != "true" {
		t.Errorf("a read with the shared store out of reach: %d %s, %s %q", resp.StatusCode, code, StaleStateHeader,
			resp.Header.Get(StaleStateHeader))
	}
	if resp, code := post(a, signedForm("AllocateEipAddress", nil, "w2", now)); resp.StatusCode != http.StatusServiceUnavailable ||
		code != "ServiceUnavailable.StateStore" {
		t.Errorf("a write with the shared store out of reach: %d %q", resp.StatusCode, code)
	}
	if got := a.snapshot(t); got != untouched {
		t.Errorf("the refused write changed the state:\n%s\nwas\n%s", got, untouched)
	}
	a.stale = true
	claims := shared.claims
	if resp, _ := post(a, signedForm("DescribeEipAddresses", nil, "r3", now)); resp.StatusCode != http.StatusOK {
		t.Errorf("a read while the state is known stale: %d", resp.StatusCode)
	}
	if shared.claims != claims {
		t.Error("a read while the state is known stale waited for the shared store")
	}
}
