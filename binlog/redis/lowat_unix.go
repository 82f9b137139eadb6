//go:build unix

package redis

import (
	"crypto/tls"
	"net"
	"syscall"
)

// setLowat sets the socket's SO_RCVLOWAT: the kernel wakes a reader only
// once n bytes wait (or at its deadline). Best effort: a stream read
// without it is correct, only costlier.
func setLowat(nc net.Conn, n int) {
	if t, ok := nc.(*tls.Conn); ok {
		nc = t.NetConn()
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, n)
	})
}
