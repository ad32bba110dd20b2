// Package data reads labelled image sets into host memory. A Dataset holds
// the images as bytes (N,C,H,W), one label per image and, when the files
// name them, the class names.
//
// Load detects the format of a folder among the registered ones
// (RegisterFormat; each format's file registers itself) and reads its
// training and test sets:
//
//   - idx: MNIST-style IDX files, raw or gzip (MNIST, Fashion-MNIST), with
//     images of rank 3 (N,H,W) or 4 (N,C,H,W or N,H,W,C);
//   - cifar10, cifar100: the CIFAR binary batches, also inside their usual
//     sub-folders (cifar-10-batches-bin/, cifar-100-binary/);
//   - imagefolder: train/<class>/*.png|jpg and optionally test/<class>/…,
//     decoded once by all cores, scaled and centre-cropped to a size.
//
// LoadMNIST finds MNIST through the Go module cache; Synthetic makes a
// learnable set for tests and quick runs.
//
// Standardisation and ChannelNorm give the map from a byte to the model's
// input; Split takes a validation set from the training set; Augment
// defines the training-time augmentation (random crop with zero padding,
// horizontal flip) by a counter-based draw (Hash3) that a GPU kernel can
// reproduce bit for bit, with a CPU reference (Augment.Apply).
//
// Every reader is safe on hostile files: a corrupt or truncated file is an
// error naming the file and the offset (or the decoder's complaint, for
// PNG and JPEG), and no file makes a reader allocate more than its size
// justifies.
package data
