// Package ethtool runs the few ethtool commands eipgw needs (offload switches) through
// the SIOCETHTOOL ioctl, in the calling thread's network namespace.
package ethtool

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Commands that take and return a struct ethtool_value (include/uapi/linux/ethtool.h).
const (
	SetTXChecksum = 0x17
	SetGRO        = 0x2c
	GetFlags      = 0x25
	SetFlags      = 0x26
)

// Flags of GetFlags and SetFlags, which the kernel maps onto features.
const (
	FlagTXVLAN = 1 << 7 // tx-vlan-hw-insert
	FlagRXVLAN = 1 << 8 // rx-vlan-hw-parse
)

// Value runs cmd on the interface with data and returns the data the kernel wrote back.
func Value(ifname string, cmd, data uint32) (uint32, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	value := struct{ cmd, data uint32 }{cmd: cmd, data: data}
	// struct ifreq with its union holding a pointer to the ethtool command.
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte
	}
	copy(ifr.name[:unix.IFNAMSIZ-1], ifname)
	ifr.data = unsafe.Pointer(&value)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
		return 0, fmt.Errorf("ethtool %#x on %s: %w", cmd, ifname, errno)
	}
	return value.data, nil
}

// SetFlag turns one of the Flag bits on or off, leaving the others.
func SetFlag(ifname string, flag uint32, on bool) error {
	flags, err := Value(ifname, GetFlags, 0)
	if err != nil {
		return err
	}
	if on {
		flags |= flag
	} else {
		flags &^= flag
	}
	_, err = Value(ifname, SetFlags, flags)
	return err
}

// Flag reads one of the Flag bits.
func Flag(ifname string, flag uint32) (bool, error) {
	flags, err := Value(ifname, GetFlags, 0)
	return flags&flag != 0, err
}
