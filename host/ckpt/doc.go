// Package ckpt reads and writes what leaves a training run: safetensors
// files (written atomically, read safely from hostile input) and
// checkpoints, which hold a model's architecture and weights, the
// optimiser state, the training configuration and the trainer's position.
package ckpt
