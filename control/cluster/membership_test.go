package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eipgw/eipgw/internal/testbed"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// TestOwnerSpreadsAndMovesLittle: ownership is spread over the members, and a member
// leaving moves only what it owned.
func TestOwnerSpreadsAndMovesLittle(t *testing.T) {
	three := []string{"gw1", "gw2", "gw3"}
	count := map[string]int{}
	owner := map[string]string{}
	for i := 0; i < 300; i++ {
		id := fmt.Sprintf("ngw-%d", i)
		owner[id] = Owner(three, id)
		count[owner[id]]++
	}
	for _, m := range three {
		if count[m] < 60 {
			t.Errorf("%s owns %d of 300 NAT gateways: %v", m, count[m], count)
		}
	}
	for id, was := range owner {
		now := Owner([]string{"gw1", "gw3"}, id)
		if was != "gw2" && now != was {
			t.Fatalf("%s moved from %s to %s when gw2 left", id, was, now)
		}
		if now == "gw2" {
			t.Fatalf("%s still owned by the member that left", id)
		}
	}
	if Owner(nil, "ngw-1") != "" {
		t.Error("an owner among no members")
	}
}

// TestMembership: members see each other through etcd; each NAT gateway has exactly
// one owner among them; a member that stops renewing (its client gone, as a killed
// process) is gone for the others within its lease, and its NAT gateways with it; a
// member that leaves is gone at once.
func TestMembership(t *testing.T) {
	_, dial := testbed.EtcdForTest(t)
	client := func() *clientv3.Client {
		t.Helper()
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}, DialTimeout: time.Second,
			DialOptions: []grpc.DialOption{grpc.WithContextDialer(dial)}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctx := context.Background()
	var members []*Member
	var clients []*clientv3.Client
	for _, name := range []string{"gw1", "gw2", "gw3"} {
		c := client()
		clients = append(clients, c)
		m, err := Join(ctx, c, "/m", name, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, m)
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	waitMembers := func(m *Member, want string, within time.Duration) time.Duration {
		t.Helper()
		t0 := time.Now()
		for fmt.Sprint(m.Members()) != want {
			if time.Since(t0) > within {
				t.Fatalf("members %v after %v, want %s", m.Members(), within, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(t0)
	}
	for _, m := range members {
		waitMembers(m, "[gw1 gw2 gw3]", 2*time.Second)
	}
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("ngw-%d", i)
		owners := 0
		for _, m := range members {
			if m.Owns(id) {
				owners++
			}
		}
		if owners != 1 {
			t.Fatalf("%s has %d owners", id, owners)
		}
	}

	// gw2's process dies: its client goes without revoking its lease.
	clients[1].Close()
	gone := waitMembers(members[0], "[gw1 gw3]", 5*time.Second)
	t.Logf("a member that stopped renewing left the others' list after %v (lease 2 s)", gone)
	// Each member learns of the lease's end from its own watch: ownership is
	// exclusive once both have.
	waitMembers(members[2], "[gw1 gw3]", time.Second)
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("ngw-%d", i)
		if members[0].Owns(id) == members[2].Owns(id) {
			t.Fatalf("%s: owned by both or neither of the two left", id)
		}
	}
	// gw3 leaves: gone at once.
	if err := members[2].Leave(); err != nil {
		t.Fatal(err)
	}
	waitMembers(members[0], "[gw1]", time.Second)
	if !members[0].Owns("ngw-1") || members[2].Owns("ngw-1") {
		t.Error("after the others left, gw1 does not own everything, or gw3 still owns")
	}
	if err := members[0].Leave(); err != nil {
		t.Fatal(err)
	}
}
