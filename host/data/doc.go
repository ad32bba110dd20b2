// Package data reads labelled image sets into host memory: IDX files (raw
// or gzip; MNIST and Fashion-MNIST), MNIST through the Go module cache, and
// a synthetic, learnable set for tests and quick runs. A Dataset holds the
// images as bytes (N,C,H,W) and one label per image; Standardisation gives
// the map from a byte to the model's input.
//
// Every reader is safe on hostile files: a corrupt or truncated file is an
// error naming the file and the offset, and no file makes a reader
// allocate more than its size justifies.
package data
