package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eipgw/eipgw/control/store"
	"github.com/eipgw/eipgw/internal/eipd"
	"github.com/eipgw/eipgw/internal/testbed"
)

const (
	apiListen     = "127.0.0.1:18080" // inside the gateway's namespace
	metricsListen = "127.0.0.1:19180"
)

// daemon is eipd running in the gateway of a standard topology.
type daemon struct {
	*gateway
	dir     string
	cmd     *exec.Cmd
	log     *testbed.OutputBuffer
	profile string
	cert    string // the API's certificate, PEM (eipd serves HTTPS)
	lbEIP   string // the CLB's EIP, once associated
	listen  string // the API's address in the gateway
}

func newDaemon(t *testing.T, hook string) *daemon { return newDaemonAt(t, hook, apiListen, "") }

// newDaemonAt is newDaemon with the API on another address (one instances reach, for
// agents) and an EIP gateway for cut-through instances.
func newDaemonAt(t *testing.T, hook, listen, eipGateway string) *daemon {
	return newDaemonWith(t, hook, func(s *eipd.LocalSetup) { s.Listen, s.EIPGateway = listen, eipGateway })
}

// newDaemonWith is newDaemon with the local setup adjusted by adjust.
func newDaemonWith(t *testing.T, hook string, adjust func(*eipd.LocalSetup)) *daemon {
	t.Helper()
	g := newGateway(t, hook, true)
	setup := eipd.LocalSetup{Uplink: testbed.GWUplink, VPC: testbed.GWVPC, Hook: hook,
		Pools: []string{testbed.EIPPool}, Listen: apiListen, MetricsListen: metricsListen, BPFFSDir: g.pinDir, ReconcileInterval: "1s",
		TLS: true}
	adjust(&setup)
	d := &daemon{gateway: g, dir: t.TempDir(), listen: setup.Listen}
	files, err := eipd.WriteLocalSetup(d.dir, setup)
	if err != nil {
		t.Fatal(err)
	}
	d.profile, d.cert = files.Profile, files.Certificate
	return d
}

// registerVM registers the instance id at addr on vm, with vm's MAC: the gateway
// translates only frames from the MAC an address is registered with.
func (d *daemon) registerVM(t *testing.T, id string, vm *testbed.Host, addr string) map[string]any {
	t.Helper()
	return d.must(t, "register-instance", "--instance-id", id, "--vpc-id", "vpc-1", "--private-ip-address", addr,
		"--mac-address", d.mac(t, vm))
}

// withVM1EIP is a started eipd at hook (its setup changed by adjust, if not nil) with
// VM1 registered and holding an EIP.
func withVM1EIP(t *testing.T, hook string, adjust func(*eipd.LocalSetup)) (d *daemon, id, eip string) {
	t.Helper()
	if adjust == nil {
		adjust = func(*eipd.LocalSetup) {}
	}
	d = newDaemonWith(t, hook, adjust)
	d.start(t, true)
	d.registerVM(t, "i-vm1", d.VM1, testbed.VM1Addr)
	id, eip = d.allocate(t)
	d.must(t, "associate-eip-address", "--allocation-id", id, "--instance-id", "i-vm1")
	return d, id, eip
}

// start runs eipd and waits until it serves; init creates the state file.
func (d *daemon) start(t *testing.T, init bool) {
	t.Helper()
	args := []string{"--config", filepath.Join(d.dir, "eipd.json")}
	if init {
		args = append(args, "--init")
	}
	d.log = &testbed.OutputBuffer{}
	d.cmd = exec.Command(bin("eipd"), args...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.GW.Start(d.cmd); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "eipd to serve", 15*time.Second, func() bool {
		if d.cmd.ProcessState != nil {
			return true
		}
		return strings.Contains(d.log.String(), "serving the API")
	})
	if !strings.Contains(d.log.String(), "serving the API") {
		t.Fatalf("eipd did not start:\n%s", d.log.String())
	}
}

// ctl runs eipctl in the gateway's namespace and decodes its JSON reply; on an
// API error it returns the error text.
func (d *daemon) ctl(t *testing.T, args ...string) (map[string]any, string) {
	t.Helper()
	cmd := exec.Command(bin("eipctl"), append([]string{"--profile", d.profile, "--output", "json"}, args...)...)
	var out []byte
	err := d.GW.Do(func() error {
		var err error
		out, err = cmd.CombinedOutput()
		return err
	})
	if err != nil {
		return nil, string(out)
	}
	var m map[string]any
	if jerr := json.Unmarshal(out, &m); jerr != nil {
		t.Fatalf("eipctl %v: %s", args, out)
	}
	return m, ""
}

func (d *daemon) must(t *testing.T, args ...string) map[string]any {
	t.Helper()
	m, errText := d.ctl(t, args...)
	if errText != "" {
		t.Fatalf("eipctl %v: %s", args, errText)
	}
	return m
}

func (d *daemon) eipStatus(t *testing.T, id string) string {
	t.Helper()
	m := d.must(t, "describe-eip-addresses", "--allocation-id", id)
	list := m["EipAddresses"].(map[string]any)["EipAddress"].([]any)
	if len(list) != 1 {
		t.Fatalf("describe %s: %v", id, m)
	}
	return list[0].(map[string]any)["Status"].(string)
}

// inboundWorks tells whether a UDP datagram from inet1 to eip:port reaches a VM
// listener within the deadline.
func inboundWorks(t *testing.T, d *daemon, vm *testbed.Host, eip string, port int) bool {
	t.Helper()
	_, _, err := testbed.UDPExchange(vm, fmt.Sprintf(":%d", port), d.Inet1, fmt.Sprintf("%s:%d", eip, port), []byte("knock knock"))
	return err == nil
}

// TestEipdEcsInstanceLifecycle drives eipd with eipctl through an EIP's life with
// real traffic at each step, and kills eipd with SIGKILL in the middle of a stream.
func TestEipdEcsInstanceLifecycle(t *testing.T) {
	d := newDaemon(t, "xdp")
	// Refuses to start without state unless told to create it, and leaves the
	// dataplane's pins alone while refusing.
	bad := exec.Command(bin("eipd"), "--config", filepath.Join(d.dir, "eipd.json"))
	var badOut []byte
	_ = d.GW.Do(func() error { badOut, _ = bad.CombinedOutput(); return nil })
	if !strings.Contains(string(badOut), "no state file") {
		t.Errorf("eipd without state and without --init: %s", badOut)
	}
	if _, err := os.Stat(d.pinDir); err == nil {
		t.Errorf("eipd refused to start but created the dataplane pins")
	}
	d.start(t, true)

	d.registerVM(t, "i-vm1", d.VM1, testbed.VM1Addr)
	alloc := d.must(t, "allocate-eip-address", "--bandwidth", "10")
	id, eip := alloc["AllocationId"].(string), alloc["EipAddress"].(string)
	if inboundWorks(t, d, d.VM1, eip, 7100) {
		t.Fatal("an unassociated EIP carried traffic")
	}
	d.must(t, "associate-eip-address", "--allocation-id", id, "--instance-id", "i-vm1", "--instance-type", "EcsInstance")
	if st := d.eipStatus(t, id); st != "InUse" {
		t.Errorf("status after associate: %s", st)
	}
	// Refused requests change neither the store nor the maps.
	maps := d.eipdp(t, "--output", "json", "bindings")
	state := d.must(t, "describe-eip-addresses")
	if _, errText := d.ctl(t, "associate-eip-address", "--allocation-id", id, "--instance-id", "i-vm1"); !strings.Contains(errText, "IncorrectEipStatus") {
		t.Errorf("associating twice: %q", errText)
	}
	if _, errText := d.ctl(t, "release-eip-address", "--allocation-id", id); !strings.Contains(errText, "IncorrectEipStatus") {
		t.Errorf("releasing an InUse EIP: %q", errText)
	}
	if after := d.eipdp(t, "--output", "json", "bindings"); after != maps {
		t.Errorf("refused requests changed the maps:\n%s\n%s", maps, after)
	}
	if after := d.must(t, "describe-eip-addresses"); fmt.Sprint(after["EipAddresses"]) != fmt.Sprint(state["EipAddresses"]) {
		t.Errorf("refused requests changed the store")
	}
	if !inboundWorks(t, d, d.VM1, eip, 7101) {
		t.Fatal("inbound to the associated EIP does not reach the VM")
	}
	got := tcpTransfer(t, d.Inet1, testbed.Inet1Addr+":7102", d.VM1, testbed.Inet1Addr+":7102", 4<<20)
	if !got.Intact || got.RemoteAddr != eip {
		t.Errorf("outbound TCP: %+v", got)
	}
	d.must(t, "modify-eip-address-attribute", "--allocation-id", id, "--bandwidth", "20", "--name", "web")

	// Kill -9 in the middle of a stream: the stream survives, the restart changes
	// nothing in the maps, and a change after the restart takes effect.
	l, err := d.Inet1.Listen("tcp", testbed.Inet1Addr+":7103")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan testbed.Transfer, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- testbed.Transfer{}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		n, _ := ioCopyCount(c)
		done <- testbed.Transfer{Bytes: n}
	}()
	conn, err := d.VM1.Dial("tcp", testbed.Inet1Addr+":7103", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 32<<10)
	sent := 0
	for i := 0; i < 60; i++ {
		if i == 20 {
			_ = d.cmd.Process.Kill()
			_ = d.cmd.Wait()
		}
		if i == 35 {
			d.start(t, false)
		}
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write(chunk); err != nil {
			t.Fatalf("the stream broke at chunk %d: %v", i, err)
		}
		sent += len(chunk)
		time.Sleep(20 * time.Millisecond)
	}
	conn.Close()
	if tr := <-done; tr.Bytes != int64(sent) {
		t.Errorf("the stream across the restart delivered %d of %d bytes", tr.Bytes, sent)
	}
	if !strings.Contains(d.log.String(), "dataplane open") || !strings.Contains(d.log.String(), "adopted=true") {
		t.Errorf("the restarted eipd did not adopt the pins:\n%s", d.log.String())
	}
	if !strings.Contains(d.log.String(), `result="0 added, 0 moved, 0 removed, 0 settled, 0 limits changed"`) {
		t.Errorf("the restart changed the dataplane:\n%s", d.log.String())
	}

	// The reply to a disassociation comes after the dataplane dropped the binding:
	// a datagram sent right after it must not arrive.
	// API counters are this process's; the dataplane's outlive it.
	if st := d.eipStatus(t, id); st != "InUse" {
		t.Errorf("status after the restart: %s", st)
	}
	metrics := d.metrics(t)
	for _, want := range []string{fmt.Sprintf(`eipgw_eip_packets_total{eip=%q,direction="in"}`, eip),
		`eipgw_api_requests_total{action="DescribeEipAddresses",code="OK",status="200"}`,
		`eipgw_dataplane_packets_total{verdict="pass",reason="pass_not_ipv4"}`} {
		if metricValue(metrics, want) == "" {
			t.Errorf("metrics lack %s", want)
		}
	}
	d.must(t, "unassociate-eip-address", "--allocation-id", id, "--instance-id", "i-vm1")
	if inboundWorks(t, d, d.VM1, eip, 7104) {
		t.Error("inbound traffic still arrives after disassociation")
	}
	if st := d.eipStatus(t, id); st != "Available" {
		t.Errorf("status after disassociation: %s", st)
	}
	d.must(t, "release-eip-address", "--allocation-id", id)
	rec := d.must(t, "allocate-eip-address", "--ip-address", eip)
	if rec["EipAddress"] != eip {
		t.Errorf("recovering the released address gave %v", rec)
	}
}

// metrics fetches /metrics from inside the gateway's namespace.
func (d *daemon) metrics(t *testing.T) string { return d.ops(t, "/metrics") }

// ops fetches a path from eipd's metrics and health listener, inside the gateway's
// namespace, and returns the whole HTTP response.
func (d *daemon) ops(t *testing.T, path string) string {
	t.Helper()
	return d.get(t, metricsListen, path)
}

// get fetches path from a listener of eipd's inside the gateway's namespace.
func (d *daemon) get(t *testing.T, listen, path string) string {
	t.Helper()
	c, err := d.GW.Dial("tcp", listen, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: eipd\r\n\r\n", path)
	body, _ := io.ReadAll(c)
	return string(body)
}

// TestEipdStateLossKeepsTheDataplane: an emptied state file, or a new empty one, is
// never reconciled over a dataplane that carries EIPs: eipd refuses to start and the
// EIP keeps working, until the operator says --init.
func TestEipdStateLossKeepsTheDataplane(t *testing.T) {
	d, _, eip := withVM1EIP(t, "xdp", nil)
	if !inboundWorks(t, d, d.VM1, eip, 7120) {
		t.Fatal("the associated EIP does not work")
	}
	_ = d.cmd.Process.Kill()
	_ = d.cmd.Wait()
	statePath := filepath.Join(d.dir, eipd.StateFile)
	refused := func(want string) {
		t.Helper()
		cmd := exec.Command(bin("eipd"), "--config", filepath.Join(d.dir, "eipd.json"))
		var out []byte
		var err error
		_ = d.GW.Do(func() error { out, err = cmd.CombinedOutput(); return nil })
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("eipd started (%v) or said something else than %q:\n%s", err, want, out)
		}
		if !inboundWorks(t, d, d.VM1, eip, 7121) {
			t.Error("the refused start broke the EIP")
		}
	}
	if err := os.Truncate(statePath, 0); err != nil {
		t.Fatal(err)
	}
	refused("file is empty")
	// A new, valid but empty state (another host's first start, a wrong path).
	if err := os.Remove(statePath); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(statePath, true)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	refused("the state holds no EIP but the pinned dataplane carries some")
	// Told to, eipd makes the dataplane match the empty state.
	d.start(t, true)
	if inboundWorks(t, d, d.VM1, eip, 7122) {
		t.Error("after --init with an empty state the EIP still carries traffic")
	}
}

// TestEipdRefusesWhatTheDataplaneCannotCarry: past max_bindings an association is
// refused with a quota code and nothing is committed; the EIP stays Available, and the
// ones that fit are carried.
func TestEipdRefusesWhatTheDataplaneCannotCarry(t *testing.T) {
	d := newDaemonWith(t, "xdp", func(s *eipd.LocalSetup) { s.MaxBindings = 2 })
	d.start(t, true)
	d.registerVM(t, "i-vm1", d.VM1, testbed.VM1Addr)
	d.registerVM(t, "i-vm2", d.VM2, testbed.VM2Addr)
	d.registerVM(t, "i-vm3", d.VM3, testbed.VM3Addr)
	for i, vm := range []string{"i-vm1", "i-vm2"} {
		id, _ := d.allocate(t)
		d.must(t, "associate-eip-address", "--allocation-id", id, "--instance-id", vm)
		if st := d.eipStatus(t, id); st != "InUse" {
			t.Errorf("association %d: %s", i+1, st)
		}
	}
	id, eip := d.allocate(t)
	_, errText := d.ctl(t, "associate-eip-address", "--allocation-id", id, "--instance-id", "i-vm3")
	if !strings.Contains(errText, "QuotaExceeded.Dataplane") {
		t.Fatalf("a third association with room for two: %q", errText)
	}
	if st := d.eipStatus(t, id); st != "Available" {
		t.Errorf("the refused EIP is %s, want Available (nothing committed)", st)
	}
	if inboundWorks(t, d, d.VM3, eip, 7130) {
		t.Error("the refused EIP carries traffic")
	}
}

// TestEipdRestoresRemovedPins: rm -rf of the pin directory under a running eipd
// detaches nothing (eipd holds its own references); /healthz says not ready until eipd
// puts the pins back, within a reconcile interval, and counts it; readers work again.
func TestEipdRestoresRemovedPins(t *testing.T) {
	// A reconcile interval long enough that the check right after the removal sees it.
	d, id, eip := withVM1EIP(t, "xdp", func(s *eipd.LocalSetup) { s.ReconcileInterval = "4s" })
	if h := d.ops(t, "/healthz"); !strings.Contains(h, "200 OK") {
		t.Fatalf("health before: %s", h)
	}
	if err := d.GW.Do(func() error { return os.RemoveAll(d.pinDir) }); err != nil {
		t.Fatal(err)
	}
	if h := d.ops(t, "/healthz"); !strings.Contains(h, "503") || !strings.Contains(h, "missing") {
		t.Errorf("health right after the pins went: %s", h)
	}
	if !inboundWorks(t, d, d.VM1, eip, 7140) {
		t.Error("removing the pins stopped the EIP")
	}
	waitFor(t, "eipd to restore the pins", 15*time.Second, func() bool {
		return strings.Contains(d.ops(t, "/healthz"), "200 OK")
	})
	if m := d.metrics(t); metricValue(m, `eipgw_dataplane_repairs_total{result="restored"}`) == "" ||
		metricValue(m, `eipgw_dataplane_repairs_total{result="restored"}`) == "0" {
		t.Errorf("the repair is not counted:\n%s", m)
	}
	// Readers open the restored pins, and a change after the repair takes effect.
	if out := d.eipdp(t, "--output", "json", "bindings"); !strings.Contains(out, eip) {
		t.Errorf("eipdp bindings after the repair: %s", out)
	}
	d.must(t, "unassociate-eip-address", "--allocation-id", id, "--instance-id", "i-vm1")
	if inboundWorks(t, d, d.VM1, eip, 7141) {
		t.Error("after the repair a disassociation does not take effect")
	}
}

// TestEipdCachesNextHops: once the first packets have resolved the neighbours, a
// 1:1 EIP's traffic both ways takes cached next hops; no packet asks the FIB.
func TestEipdCachesNextHops(t *testing.T) {
	for _, hook := range []string{"xdp", "tc"} {
		t.Run(hook, func(t *testing.T) {
			d, _, eip := withVM1EIP(t, hook, nil)
			fallbacks := func() uint64 {
				t.Helper()
				m := d.metrics(t)
				var sum uint64
				for _, why := range []string{"off", "miss", "stale", "size"} {
					v := metricValue(m, fmt.Sprintf("eipgw_next_hop_fallbacks_total{why=%q}", why))
					n, err := strconv.ParseUint(v, 10, 64)
					if err != nil {
						t.Fatalf("no fallback count %q in the metrics: %q", why, v)
					}
					sum += n
				}
				return sum
			}
			port := 7300
			exchange := func() bool { port++; return inboundWorks(t, d, d.VM1, eip, port) }
			// The first exchanges resolve the instance's and the router's MACs through
			// the kernel, and the watcher caches them.
			waitFor(t, "an exchange that takes only cached hops", 10*time.Second, func() bool {
				before := fallbacks()
				return exchange() && fallbacks() == before
			})
			before := fallbacks()
			for range 20 {
				if !exchange() {
					t.Fatal("an exchange through the EIP failed")
				}
			}
			if got := fallbacks() - before; got != 0 {
				t.Errorf("%d packets of 20 exchanges asked the FIB", got)
			}
		})
	}
}
