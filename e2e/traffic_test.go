package e2e

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/eipgw/eipgw/internal/testbed"
)

func pattern(seed int64) io.Reader { return testbed.Pattern(seed) }

func tcpTransfer(t *testing.T, server *testbed.Host, listen string, client *testbed.Host, dial string, size int64) testbed.Transfer {
	t.Helper()
	tr, err := testbed.TCPTransfer(server, listen, client, dial, size)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func udpExchange(t *testing.T, server *testbed.Host, listen string, client *testbed.Host, dial string, msg []byte) (serverSaw, clientSaw string) {
	t.Helper()
	serverSaw, clientSaw, err := testbed.UDPExchange(server, listen, client, dial, msg)
	if err != nil {
		t.Fatal(err)
	}
	return serverSaw, clientSaw
}

// udpToClosedPort sends a datagram on a connected socket to a port nobody listens on
// and returns the error the next read gets: ECONNREFUSED when the ICMP port
// unreachable came back and matched the socket.
func udpToClosedPort(t *testing.T, client *testbed.Host, dial string) error {
	t.Helper()
	c, err := client.Dial("udp4", dial, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("anyone?")); err != nil {
		return err
	}
	_, err = c.Read(make([]byte, 64))
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ioCopyCount reads r to its end and returns how many bytes came.
func ioCopyCount(r io.Reader) (int64, error) { return io.Copy(io.Discard, r) }
