//go:build !race

package cpuref

// raceBuild reports a build with the race detector, which compiles the
// Go loops differently (see equalBits32).
const raceBuild = false
