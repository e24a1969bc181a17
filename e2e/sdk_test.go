package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"
	"github.com/eipgw/eipgw/internal/testbed"
)

// TestOfficialSDK drives eipd with the cloud's legacy Go SDK (HMAC-SHA1), unmodified:
// only the request's Domain (eipd) and Scheme (https) are set, and its transport
// dials from inside the gateway's namespace, where eipd listens, trusting eipd's
// certificate.
func TestOfficialSDK(t *testing.T) {
	d := newDaemon(t, "xdp")
	d.start(t, true)
	d.registerVM(t, "i-vm1", d.VM1, testbed.VM1Addr)

	client := officialClient(t, d)
	at := func(r interface {
		SetDomain(string)
		SetScheme(string)
	}) {
		r.SetDomain(apiListen)
		r.SetScheme("https")
	}

	alloc := vpc.CreateAllocateEipAddressRequest()
	at(alloc)
	alloc.Bandwidth = "5"
	alloc.InternetChargeType = "PayByTraffic"
	alloc.Name = "sdk"
	aresp, err := client.AllocateEipAddress(alloc)
	if err != nil {
		t.Fatalf("AllocateEipAddress: %v", err)
	}
	id, eip := aresp.AllocationId, aresp.EipAddress
	if aresp.RequestId == "" || !strings.HasPrefix(id, "eip-") || eip == "" {
		t.Fatalf("allocation: %+v", aresp)
	}

	assoc := vpc.CreateAssociateEipAddressRequest()
	at(assoc)
	assoc.AllocationId, assoc.InstanceId, assoc.InstanceType = id, "i-vm1", "EcsInstance"
	if _, err := client.AssociateEipAddress(assoc); err != nil {
		t.Fatalf("AssociateEipAddress: %v", err)
	}
	// The SDK surfaces our error codes as it does the cloud's.
	if _, err := client.AssociateEipAddress(assoc); !hasCode(err, "IncorrectEipStatus") {
		t.Errorf("associating twice through the SDK: %v", err)
	}
	if !inboundWorks(t, d, d.VM1, eip, 7400) {
		t.Fatal("inbound through the EIP")
	}
	if got := tcpTransfer(t, d.Inet1, testbed.Inet1Addr+":7401", d.VM1, testbed.Inet1Addr+":7401", 1<<20); !got.Intact || got.RemoteAddr != eip {
		t.Errorf("outbound through the EIP: %+v", got)
	}

	mod := vpc.CreateModifyEipAddressAttributeRequest()
	at(mod)
	mod.AllocationId, mod.Bandwidth, mod.Description = id, "50", "via the sdk"
	if _, err := client.ModifyEipAddressAttribute(mod); err != nil {
		t.Fatalf("ModifyEipAddressAttribute: %v", err)
	}
	desc := vpc.CreateDescribeEipAddressesRequest()
	at(desc)
	desc.AllocationId = id
	dresp, err := client.DescribeEipAddresses(desc)
	if err != nil {
		t.Fatalf("DescribeEipAddresses: %v", err)
	}
	if dresp.TotalCount != 1 || len(dresp.EipAddresses.EipAddress) != 1 {
		t.Fatalf("describe: %+v", dresp)
	}
	e := dresp.EipAddresses.EipAddress[0]
	if e.Status != "InUse" || e.Bandwidth != "50" || e.InstanceId != "i-vm1" || e.IpAddress != eip || e.Descritpion != "via the sdk" {
		t.Errorf("described EIP: %+v", e)
	}

	// Monitoring data the SDK's way: one point a minute of the last five (the
	// sampler records at each minute; internal/eipd and control/model test the figures).
	mon := vpc.CreateDescribeEipMonitorDataRequest()
	at(mon)
	monStart := time.Now().UTC().Add(-5 * time.Minute).Truncate(time.Minute)
	mon.AllocationId, mon.Period = id, requests.NewInteger(60)
	mon.StartTime, mon.EndTime = monStart.Format("2006-01-02T15:04:05Z"), monStart.Add(5*time.Minute).Format("2006-01-02T15:04:05Z")
	mresp, err := client.DescribeEipMonitorData(mon)
	if err != nil {
		t.Fatalf("DescribeEipMonitorData: %v", err)
	}
	if pts := mresp.EipMonitorDatas.EipMonitorData; len(pts) != 5 || pts[0].TimeStamp != mon.StartTime {
		t.Errorf("monitor data: %+v", mresp.EipMonitorDatas)
	}
	mon.Period = requests.NewInteger(61)
	if _, err := client.DescribeEipMonitorData(mon); !hasCode(err, "InvalidParameter") {
		t.Errorf("DescribeEipMonitorData with Period 61: %v", err)
	}

	// A shared bandwidth the SDK's way: created, the EIP added, described with it,
	// and removed again.
	cbwp := vpc.CreateCreateCommonBandwidthPackageRequest()
	at(cbwp)
	cbwp.Bandwidth, cbwp.Name = requests.NewInteger(30), "sdk-shared"
	cresp, err := client.CreateCommonBandwidthPackage(cbwp)
	if err != nil || !strings.HasPrefix(cresp.BandwidthPackageId, "cbwp-") {
		t.Fatalf("CreateCommonBandwidthPackage: %+v, %v", cresp, err)
	}
	addIP := vpc.CreateAddCommonBandwidthPackageIpRequest()
	at(addIP)
	addIP.BandwidthPackageId, addIP.IpInstanceId = cresp.BandwidthPackageId, id
	if _, err := client.AddCommonBandwidthPackageIp(addIP); err != nil {
		t.Fatalf("AddCommonBandwidthPackageIp: %v", err)
	}
	descPkg := vpc.CreateDescribeCommonBandwidthPackagesRequest()
	at(descPkg)
	descPkg.BandwidthPackageId = cresp.BandwidthPackageId
	dpresp, err := client.DescribeCommonBandwidthPackages(descPkg)
	if err != nil || len(dpresp.CommonBandwidthPackages.CommonBandwidthPackage) != 1 {
		t.Fatalf("DescribeCommonBandwidthPackages: %+v, %v", dpresp, err)
	}
	if p := dpresp.CommonBandwidthPackages.CommonBandwidthPackage[0]; p.Bandwidth != "30" || p.Name != "sdk-shared" ||
		len(p.PublicIpAddresses.PublicIpAddresse) != 1 || p.PublicIpAddresses.PublicIpAddresse[0].AllocationId != id {
		t.Errorf("the package described: %+v", p)
	}
	descEIP := vpc.CreateDescribeEipAddressesRequest()
	at(descEIP)
	descEIP.AllocationId = id
	if r, err := client.DescribeEipAddresses(descEIP); err != nil || len(r.EipAddresses.EipAddress) != 1 ||
		r.EipAddresses.EipAddress[0].BandwidthPackageId != cresp.BandwidthPackageId || r.EipAddresses.EipAddress[0].Bandwidth != "30" {
		t.Errorf("an EIP in a package, described: %+v, %v", r, err)
	}
	// A cap inside the package: described as the EIP's Bandwidth, then lifted.
	capIP := vpc.CreateModifyCommonBandwidthPackageIpBandwidthRequest()
	at(capIP)
	capIP.BandwidthPackageId, capIP.EipId, capIP.Bandwidth = cresp.BandwidthPackageId, id, "10"
	if _, err := client.ModifyCommonBandwidthPackageIpBandwidth(capIP); err != nil {
		t.Fatalf("ModifyCommonBandwidthPackageIpBandwidth: %v", err)
	}
	if r, err := client.DescribeEipAddresses(descEIP); err != nil || len(r.EipAddresses.EipAddress) != 1 || r.EipAddresses.EipAddress[0].Bandwidth != "10" {
		t.Errorf("an EIP capped in its package, described: %+v, %v", r, err)
	}
	uncap := vpc.CreateCancelCommonBandwidthPackageIpBandwidthRequest()
	at(uncap)
	uncap.BandwidthPackageId, uncap.EipId = cresp.BandwidthPackageId, id
	if _, err := client.CancelCommonBandwidthPackageIpBandwidth(uncap); err != nil {
		t.Fatalf("CancelCommonBandwidthPackageIpBandwidth: %v", err)
	}
	if r, err := client.DescribeEipAddresses(descEIP); err != nil || len(r.EipAddresses.EipAddress) != 1 || r.EipAddresses.EipAddress[0].Bandwidth != "30" {
		t.Errorf("an EIP whose cap was lifted, described: %+v, %v", r, err)
	}
	rmIP := vpc.CreateRemoveCommonBandwidthPackageIpRequest()
	at(rmIP)
	rmIP.BandwidthPackageId, rmIP.IpInstanceId = cresp.BandwidthPackageId, id
	if _, err := client.RemoveCommonBandwidthPackageIp(rmIP); err != nil {
		t.Fatalf("RemoveCommonBandwidthPackageIp: %v", err)
	}
	if _, err := client.RemoveCommonBandwidthPackageIp(rmIP); !hasCode(err, "OperationUnsupported.IpNotInCbwp") {
		t.Errorf("removing an EIP twice: %v", err)
	}
	// Several at once, in the SDK's repeated parameter (IpInstanceIds.N); the package
	// is then deleted with its EIPs (Force).
	alloc2 := vpc.CreateAllocateEipAddressRequest()
	at(alloc2)
	a2, err := client.AllocateEipAddress(alloc2)
	if err != nil {
		t.Fatalf("AllocateEipAddress: %v", err)
	}
	addIPs := vpc.CreateAddCommonBandwidthPackageIpsRequest()
	at(addIPs)
	addIPs.BandwidthPackageId, addIPs.IpInstanceIds, addIPs.IpType = cresp.BandwidthPackageId, &[]string{id, a2.AllocationId}, "EIP"
	if _, err := client.AddCommonBandwidthPackageIps(addIPs); err != nil {
		t.Fatalf("AddCommonBandwidthPackageIps: %v", err)
	}
	if r, err := client.DescribeCommonBandwidthPackages(descPkg); err != nil || len(r.CommonBandwidthPackages.CommonBandwidthPackage) != 1 ||
		len(r.CommonBandwidthPackages.CommonBandwidthPackage[0].PublicIpAddresses.PublicIpAddresse) != 2 {
		t.Errorf("the package after AddCommonBandwidthPackageIps: %+v, %v", r, err)
	}
	if _, err := client.AddCommonBandwidthPackageIps(addIPs); !hasCode(err, "IpInstanceId.AlreadyInBandwidthPackage") {
		t.Errorf("adding the same EIPs twice: %v", err)
	}
	delPkg := vpc.CreateDeleteCommonBandwidthPackageRequest()
	at(delPkg)
	delPkg.BandwidthPackageId, delPkg.Force = cresp.BandwidthPackageId, "true"
	if _, err := client.DeleteCommonBandwidthPackage(delPkg); err != nil {
		t.Fatalf("DeleteCommonBandwidthPackage: %v", err)
	}
	rel2 := vpc.CreateReleaseEipAddressRequest()
	at(rel2)
	rel2.AllocationId = a2.AllocationId
	if _, err := client.ReleaseEipAddress(rel2); err != nil {
		t.Fatalf("ReleaseEipAddress: %v", err)
	}

	un := vpc.CreateUnassociateEipAddressRequest()
	at(un)
	un.AllocationId, un.InstanceId = id, "i-vm1"
	if _, err := client.UnassociateEipAddress(un); err != nil {
		t.Fatalf("UnassociateEipAddress: %v", err)
	}
	if inboundWorks(t, d, d.VM1, eip, 7402) {
		t.Error("inbound still works after UnassociateEipAddress replied")
	}
	rel := vpc.CreateReleaseEipAddressRequest()
	at(rel)
	rel.AllocationId = id
	if _, err := client.ReleaseEipAddress(rel); err != nil {
		t.Fatalf("ReleaseEipAddress: %v", err)
	}
	recov := vpc.CreateAllocateEipAddressRequest()
	at(recov)
	recov.IpAddress = eip
	rresp, err := client.AllocateEipAddress(recov)
	if err != nil || rresp.EipAddress != eip {
		t.Fatalf("recovering %s: %+v, %v", eip, rresp, err)
	}
}

// officialClient is the cloud's legacy Go SDK client for d: the profile's key, a
// transport that dials from inside the gateway's namespace, where eipd listens,
// trusting eipd's certificate.
func officialClient(t *testing.T, d *daemon) *vpc.Client {
	t.Helper()
	var prof struct{ AccessKeyID, AccessKeySecret string }
	raw, err := os.ReadFile(d.profile)
	if err != nil || json.Unmarshal(raw, &struct {
		ID     *string `json:"access_key_id"`
		Secret *string `json:"access_key_secret"`
	}{&prof.AccessKeyID, &prof.AccessKeySecret}) != nil {
		t.Fatalf("profile: %v", err)
	}
	client, err := vpc.NewClientWithAccessKey("eipgw-1", prof.AccessKeyID, prof.AccessKeySecret)
	if err != nil {
		t.Fatal(err)
	}
	// Wrapped, because the SDK replaces the dialer of a plain *http.Transport; it
	// trusts eipd's self-signed certificate.
	roots := x509.NewCertPool()
	if pem, err := os.ReadFile(d.cert); err != nil || !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("eipd's certificate: %v", err)
	}
	client.SetTransport(nsTransport{&http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.GW.Dial(network, addr, 5*time.Second)
		}}})
	return client
}

func hasCode(err error, code string) bool {
	var se *sdkerrors.ServerError
	return errors.As(err, &se) && se.ErrorCode() == code
}

// nsTransport dials inside a namespace; it is not an *http.Transport, so the SDK
// leaves its dialer alone.
type nsTransport struct{ t *http.Transport }

func (n nsTransport) RoundTrip(r *http.Request) (*http.Response, error) { return n.t.RoundTrip(r) }
