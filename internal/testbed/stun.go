package testbed

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// A STUN (RFC 5389) binding server and client, enough to observe a NAT's mapping
// behaviour the way RFC 5780 does: the client sends binding requests from one socket
// to several servers and compares the XOR-MAPPED-ADDRESS each one reports.

const (
	stunMagicCookie     = 0x2112A442
	stunBindingRequest  = 0x0001
	stunBindingResponse = 0x0101
	stunXORMappedAddr   = 0x0020
	stunHeaderLen       = 20
)

// StunServer answers binding requests on a UDP socket until Close.
type StunServer struct{ conn net.PacketConn }

// ServeStun starts a STUN server on h at addr.
func ServeStun(h *Host, addr string) (*StunServer, error) {
	conn, err := h.ListenPacket("udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("stun server: %w", err)
	}
	s := &StunServer{conn: conn}
	go s.serve()
	return s, nil
}

func (s *StunServer) Close() error { return s.conn.Close() }

func (s *StunServer) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		if n < stunHeaderLen || binary.BigEndian.Uint16(buf) != stunBindingRequest ||
			binary.BigEndian.Uint32(buf[4:]) != stunMagicCookie {
			continue // not a binding request: RFC 5389 says ignore it
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok || ua.IP.To4() == nil {
			continue
		}
		resp := make([]byte, stunHeaderLen+12)
		binary.BigEndian.PutUint16(resp, stunBindingResponse)
		binary.BigEndian.PutUint16(resp[2:], 12)
		copy(resp[4:20], buf[4:20]) // cookie and transaction ID
		attr := resp[20:]
		binary.BigEndian.PutUint16(attr, stunXORMappedAddr)
		binary.BigEndian.PutUint16(attr[2:], 8)
		attr[5] = 0x01 // IPv4
		binary.BigEndian.PutUint16(attr[6:], uint16(ua.Port)^uint16(stunMagicCookie>>16))
		binary.BigEndian.PutUint32(attr[8:], binary.BigEndian.Uint32(ua.IP.To4())^stunMagicCookie)
		_, _ = s.conn.WriteTo(resp, from)
	}
}

// StunMappedAddress sends a binding request from conn to server and returns the
// address the server saw.
func StunMappedAddress(conn net.PacketConn, server string) (netip.AddrPort, error) {
	dst, err := net.ResolveUDPAddr("udp4", server)
	if err != nil {
		return netip.AddrPort{}, err
	}
	req := make([]byte, stunHeaderLen)
	binary.BigEndian.PutUint16(req, stunBindingRequest)
	binary.BigEndian.PutUint32(req[4:], stunMagicCookie)
	if _, err := rand.Read(req[8:20]); err != nil {
		return netip.AddrPort{}, err
	}
	buf := make([]byte, 1500)
	for attempt := 0; attempt < 3; attempt++ { // RFC 5389 retransmits over UDP
		if _, err := conn.WriteTo(req, dst); err != nil {
			return netip.AddrPort{}, fmt.Errorf("stun request to %s: %w", server, err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			continue
		}
		if n < stunHeaderLen+12 || binary.BigEndian.Uint16(buf) != stunBindingResponse || string(buf[8:20]) != string(req[8:20]) {
			continue
		}
		for off := stunHeaderLen; off+4 <= n; {
			typ, l := binary.BigEndian.Uint16(buf[off:]), int(binary.BigEndian.Uint16(buf[off+2:]))
			if typ == stunXORMappedAddr && l >= 8 && off+4+l <= n && buf[off+5] == 0x01 {
				port := binary.BigEndian.Uint16(buf[off+6:]) ^ uint16(stunMagicCookie>>16)
				var ip [4]byte
				binary.BigEndian.PutUint32(ip[:], binary.BigEndian.Uint32(buf[off+8:])^stunMagicCookie)
				return netip.AddrPortFrom(netip.AddrFrom4(ip), port), nil
			}
			off += 4 + (l+3)&^3
		}
		return netip.AddrPort{}, errors.New("stun response without XOR-MAPPED-ADDRESS")
	}
	return netip.AddrPort{}, fmt.Errorf("no stun response from %s", server)
}
