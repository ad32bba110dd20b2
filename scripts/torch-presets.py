#!/usr/bin/python3
"""Prints the parameter counts of convtrain's model presets built in
PyTorch, independently of convtrain's code: the numbers that
host/nn's TestPresets compares with.

    /usr/bin/python3 scripts/torch-presets.py

lenet: the default network on 1x28x28 (conv 8 5x5, ReLU, max-pool 2, conv
16 5x5, ReLU, max-pool 2, dense 10). resnet8 and resnet20: He et al.
(2016)'s CIFAR ResNets (6n+2 layers, n = 1 and 3) on 3x32x32 with
bias-free convolutions, BatchNorm after each, projection shortcuts (1x1
convolution of stride 2 and BatchNorm) where the shape changes, global
average pooling and a dense layer of 10 classes. Counts are of trainable
parameters (BatchNorm's running statistics are buffers).
"""
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.b2(self.c2(self.b1(self.c1(x)).relu()))
        return (y + self.short(x)).relu()


def resnet(n, classes=10, cin=3):
    layers = [nn.Conv2d(cin, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    cin = 16
    for k in (16, 32, 64):
        for i in range(n):
            stride = 2 if i == 0 and k != 16 else 1
            layers.append(Block(cin, k, stride))
            cin = k
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes)]
    return nn.Sequential(*layers)


def lenet():
    return nn.Sequential(nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 10))


if __name__ == "__main__":
    for name, model in (("lenet", lenet()), ("resnet8", resnet(1)), ("resnet20", resnet(3))):
        print(name, sum(p.numel() for p in model.parameters() if p.requires_grad))
