"""KDL-DARTS: ops, search space, supernet, architect, cost model, genotype, derived student."""
