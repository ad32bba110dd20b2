//go:build !linux

package main

import "os"

// terminalWidth is 0 (unknown) outside Linux; $COLUMNS may still say.
func terminalWidth(*os.File) int { return 0 }
