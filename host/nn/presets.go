package nn

import (
	"fmt"
	"sort"
	"strings"
)

// Presets are the networks -model takes by name, as spec texts ending in
// a dense layer of 10 classes (a caller fitting another class count
// replaces that layer: see WithClasses):
//
//	lenet     the default network, DefaultSpecText
//	resnet8   He et al. (2016)'s CIFAR ResNet with n = 1 (8 layers)
//	resnet20  the same with n = 3 (20 layers)
//
// A CIFAR ResNet of 6n+2 layers is a 3×3 convolution of 16 filters, three
// stages of n basic blocks of 16, 32 and 64 filters, the first block of
// the second and third stage of stride 2, global average pooling and a
// dense layer. A basic block is conv3×3, BatchNorm, ReLU, conv3×3,
// BatchNorm, added to its shortcut, then ReLU; the shortcut is the
// identity, or where the shape changes a 1×1 convolution of stride 2 and
// BatchNorm (the projection, option B of the paper). The convolutions
// have no bias (the BatchNorm after each has its own), as in the PyTorch
// implementations these parameter counts are compared with.
var Presets = map[string]string{
	"lenet":    DefaultSpecText,
	"resnet8":  cifarResNet(1),
	"resnet20": cifarResNet(3),
}

// Recipe is a preset's default training recipe: the SGD learning rate and
// weight decay that `train -model NAME` uses unless -lr or -weight-decay
// is given.
type Recipe struct {
	LR, WeightDecay float64
}

// PresetRecipes are the presets' recipes where they differ from train's
// defaults (lr 0.05, no weight decay): the ResNets train with lr 0.1 and
// weight decay 5e-4, the usual recipe of the CIFAR ResNets (He et al. use
// 1e-4), with which resnet8 reaches about 93 % on Fashion-MNIST in 10
// epochs (92.93–93.24 % over four runs, BENCHMARKS.md).
var PresetRecipes = map[string]Recipe{
	"resnet8":  {LR: 0.1, WeightDecay: 5e-4},
	"resnet20": {LR: 0.1, WeightDecay: 5e-4},
}

// cifarResNet is the spec text of the CIFAR ResNet of 6n+2 layers.
func cifarResNet(n int) string {
	parts := []string{"conv16x3x3p1nobias,bn,relu"}
	in := 16
	for _, k := range []int{16, 32, 64} {
		for i := range n {
			stride := 1
			if i == 0 && k != 16 {
				stride = 2
			}
			first := fmt.Sprintf("conv%dx3x3p1nobias", k)
			if stride > 1 {
				first = fmt.Sprintf("conv%dx3x3s%dp1nobias", k, stride)
			}
			block := fmt.Sprintf("res(%s,bn,relu,conv%dx3x3p1nobias,bn", first, k)
			if stride > 1 || in != k {
				block += fmt.Sprintf("|conv%dx1x1s%dnobias,bn", k, stride)
			}
			parts = append(parts, block+"),relu")
			in = k
		}
	}
	return strings.Join(append(parts, "gap,dense10"), ",")
}

// presetNames lists the presets, for messages.
func presetNames() string {
	var names []string
	for n := range Presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// WithClasses returns layers with its last layer, a dense one, made
// classes wide (the other layers shared, not copied).
func WithClasses(layers []LayerSpec, classes int) []LayerSpec {
	out := append([]LayerSpec(nil), layers...)
	last := &out[len(out)-1]
	if last.Kind == Dense {
		last.Units = classes
	}
	return out
}
