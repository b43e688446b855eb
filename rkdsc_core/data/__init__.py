"""Datasets (Fashion-MNIST, CIFAR, ImageFolder), transforms and the teacher-feature store."""
