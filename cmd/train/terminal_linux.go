package main

import (
	"os"
	"syscall"
	"unsafe"
)

// terminalWidth is the width in columns of the terminal f, or 0 when it
// cannot be known.
func terminalWidth(f *os.File) int {
	var ws struct{ Row, Col, X, Y uint16 }
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), uintptr(syscall.TIOCGWINSZ), uintptr(unsafe.Pointer(&ws))); e != 0 {
		return 0
	}
	return int(ws.Col)
}
