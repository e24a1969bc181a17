package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eipgw/eipgw/internal/eipd"
	"github.com/eipgw/eipgw/internal/testbed"
)

// sdkv3 makes one call with the cloud's current Go SDK (e2e/sdkv3), inside the
// gateway's namespace, over HTTPS to eipd with the certificate trusted through
// SSL_CERT_FILE; it returns the reply's body, or the error code and ok false.
func (d *daemon) sdkv3(t *testing.T, action string, kv ...string) (reply map[string]any, code string, ok bool) {
	t.Helper()
	var prof struct {
		ID     string `json:"access_key_id"`
		Secret string `json:"access_key_secret"`
	}
	raw, err := os.ReadFile(d.profile)
	if err != nil || json.Unmarshal(raw, &prof) != nil {
		t.Fatalf("profile: %v", err)
	}
	cmd := exec.Command(bin("sdkv3"), append([]string{d.listen, action}, kv...)...)
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+d.cert, "ALIBABA_CLOUD_ACCESS_KEY_ID="+prof.ID,
		"ALIBABA_CLOUD_ACCESS_KEY_SECRET="+prof.Secret)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	var out []byte
	err = d.GW.Do(func() error {
		var err error
		out, err = cmd.Output()
		return err
	})
	if _, exited := err.(*exec.ExitError); exited {
		t.Logf("sdkv3 %s: %s", action, strings.TrimSpace(stderr.String()))
		return nil, strings.TrimSpace(string(out)), false
	} else if err != nil {
		t.Fatalf("sdkv3 %s: %v", action, err)
	}
	if err := json.Unmarshal(out, &reply); err != nil {
		t.Fatalf("sdkv3 %s printed %q", action, out)
	}
	return reply, "", true
}

func (d *daemon) mustSDKv3(t *testing.T, action string, kv ...string) map[string]any {
	t.Helper()
	reply, code, ok := d.sdkv3(t, action, kv...)
	if !ok {
		t.Fatalf("%s through the current SDK: %s", action, code)
	}
	if reply["RequestId"] == "" || reply["RequestId"] == nil {
		t.Errorf("%s: no RequestId in %v", action, reply)
	}
	return reply
}

// TestCurrentSDK drives eipd with today's Go SDK as a new user configures it
// (endpoint, AccessKey pair, region; it signs with ACS3-HMAC-SHA256 and speaks HTTPS
// by itself): the whole EIP lifecycle, with traffic at each step.
func TestCurrentSDK(t *testing.T) {
	d := newDaemon(t, "xdp")
	d.start(t, true)
	d.registerVM(t, "i-vm1", d.VM1, testbed.VM1Addr)

	alloc := d.mustSDKv3(t, "AllocateEipAddress", "Bandwidth=5", "InternetChargeType=PayByTraffic", "Name=sdk-v3")
	id, _ := alloc["AllocationId"].(string)
	eip, _ := alloc["EipAddress"].(string)
	if !strings.HasPrefix(id, "eip-") || eip == "" {
		t.Fatalf("allocation: %v", alloc)
	}
	if inboundWorks(t, d, d.VM1, eip, 7410) {
		t.Error("an allocated EIP carries traffic before it is associated")
	}
	d.mustSDKv3(t, "AssociateEipAddress", "AllocationId="+id, "InstanceId=i-vm1", "InstanceType=EcsInstance")
	if _, code, _ := d.sdkv3(t, "AssociateEipAddress", "AllocationId="+id, "InstanceId=i-vm1", "InstanceType=EcsInstance"); code != "IncorrectEipStatus" {
		t.Errorf("associating twice through the current SDK: %q", code)
	}
	if !inboundWorks(t, d, d.VM1, eip, 7411) {
		t.Fatal("inbound through the EIP after AssociateEipAddress replied")
	}
	if got := tcpTransfer(t, d.Inet1, testbed.Inet1Addr+":7412", d.VM1, testbed.Inet1Addr+":7412", 1<<20); !got.Intact || got.RemoteAddr != eip {
		t.Errorf("outbound through the EIP: %+v", got)
	}

	d.mustSDKv3(t, "ModifyEipAddressAttribute", "AllocationId="+id, "Bandwidth=50", "Description=via the current sdk")
	desc := d.mustSDKv3(t, "DescribeEipAddresses", "AllocationId="+id)
	list, _ := desc["EipAddresses"].(map[string]any)["EipAddress"].([]any)
	if len(list) != 1 {
		t.Fatalf("describe: %v", desc)
	}
	e := list[0].(map[string]any)
	if e["Status"] != "InUse" || e["Bandwidth"] != "50" || e["InstanceId"] != "i-vm1" || e["IpAddress"] != eip || e["Description"] != "via the current sdk" {
		t.Errorf("described EIP: %v", e)
	}
	if !inboundWorks(t, d, d.VM1, eip, 7413) {
		t.Error("inbound after ModifyEipAddressAttribute")
	}

	d.mustSDKv3(t, "UnassociateEipAddress", "AllocationId="+id, "InstanceId=i-vm1")
	if inboundWorks(t, d, d.VM1, eip, 7414) {
		t.Error("inbound still works after UnassociateEipAddress replied")
	}
	d.mustSDKv3(t, "ReleaseEipAddress", "AllocationId="+id)
	recov := d.mustSDKv3(t, "AllocateEipAddress", "IpAddress="+eip)
	if recov["EipAddress"] != eip {
		t.Fatalf("recovering %s: %v", eip, recov)
	}
	d.mustSDKv3(t, "AssociateEipAddress", "AllocationId="+recov["AllocationId"].(string), "InstanceId=i-vm1")
	if !inboundWorks(t, d, d.VM1, eip, 7415) {
		t.Error("inbound through the recovered EIP")
	}
}

// TestCertificateReload: eipd serves a renewed certificate after SIGHUP, to new
// connections, without a restart; requests keep being answered.
func TestCertificateReload(t *testing.T) {
	d := newDaemon(t, "xdp")
	d.start(t, true)
	served := func() []byte {
		t.Helper()
		conn, err := d.GW.Dial("tcp", d.listen, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
		defer tc.Close()
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		return tc.ConnectionState().PeerCertificates[0].Raw
	}
	first := served()
	// A renewed certificate and key for the same address, written over the old ones.
	renewed, err := eipd.WriteLocalSetup(t.TempDir(), eipd.LocalSetup{Uplink: "u", VPC: "v", Pools: []string{testbed.EIPPool},
		Listen: d.listen, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"api-cert.pem", "api-key.pem"} {
		raw, err := os.ReadFile(filepath.Join(renewed.StateDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d.dir, name), raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(served(), first) {
		t.Fatal("the certificate changed before SIGHUP")
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the renewed certificate", 5*time.Second, func() bool { return !bytes.Equal(served(), first) })
	if _, code := d.ctl(t, "describe-eip-addresses"); code != "" {
		t.Errorf("eipctl after the reload (its ca_file is the renewed certificate): %s", code)
	}
}
