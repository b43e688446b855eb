"""Regenerate the committed Fashion-MNIST subset used by unit tests (first N of each split)."""

import argparse

import numpy as np

from rkdsc_core.data.datasets import SUBSET_FILE, load_fmnist


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--test", type=int, default=500)
    args = ap.parse_args()
    # the committed file holds the first N (Fashion-MNIST's own order is class-mixed)
    tr = load_fmnist("train").select(np.arange(args.train))
    te = load_fmnist("test").select(np.arange(args.test))
    np.savez_compressed(
        SUBSET_FILE,
        train_images=tr.images,
        train_labels=tr.labels,
        test_images=te.images,
        test_labels=te.labels,
    )
    print(f"wrote {SUBSET_FILE}")


if __name__ == "__main__":
    main()
