//go:build !unix

package redis

import "net"

// setLowat is a no-op where SO_RCVLOWAT is not available.
func setLowat(net.Conn, int) {}
